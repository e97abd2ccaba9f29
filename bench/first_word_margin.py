"""How surely each taught model picks the first token of its generated answers.

Why: on one taught model of the five-seed sweep (teach seed 4) the gentlest GA and NPO changed the first word
of 83 of 270 image+text retain replies while every other model kept them (docs/seed_variance.md, "Five taught
models"). A model whose first-token choice is near a tie on many questions turns its replies at the smallest
step; this measures that margin, log p(top token) - log p(runner-up) at the first answer position of every
generation question, one taught model per seed of a frontier sweep, so the models can be compared.

`python -m bench.first_word_margin --sweep DIR [--split retain] [--first-word born] [--out FILE.md]` (DIR: a
`unlearn.frontier` sweep; each seed's vanilla model is the source model its runs name; its cache holds the
benchmark; `--first-word`: only the questions whose vanilla reply, as a run of that seed recorded it, starts
with that word).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
from pathlib import Path

import torch

NEAR = 1.0  # nats: a first-token choice closer than this is counted as near a tie


def first_token_margins(logits: torch.Tensor) -> torch.Tensor:
    """log p(top) - log p(runner-up) over the last dimension (the vocabulary), one per row."""
    top = torch.log_softmax(logits.float(), dim=-1).topk(2, dim=-1).values
    return top[..., 0] - top[..., 1]


def margin_summary(margins: list[float], near: float = NEAR) -> dict:
    """Median, 10th percentile, and the share below `near`, of one model's margins."""
    ordered = sorted(margins)
    if not ordered:  # no question of that kind on this model
        return {"n": 0, "median": float("nan"), "p10": float("nan"), "near": float("nan")}
    return {"n": len(ordered), "median": statistics.median(ordered),
            "p10": ordered[max(0, math.ceil(0.1 * len(ordered)) - 1)],  # nearest rank
            "near": sum(m < near for m in ordered) / len(ordered)}


def seed_runs(sweep: Path) -> dict[int, tuple[str, list[Path]]]:
    """{seed: (the vanilla model its runs started from, its finished run dirs)}, each metrics.json read once."""
    found: dict[int, tuple[str, list[Path]]] = {}
    for metrics in sorted(sweep.glob("*/*/seed*/metrics.json")):
        record = json.loads(metrics.read_text())
        found.setdefault(int(record["teach_seed"]), (record["source_model"], []))[1].append(metrics.parent)
    return found


def vanilla_replies(runs: list[Path]) -> dict[str, str]:
    """{uid: the vanilla model's generated reply}, from the first of `runs` that recorded its before-stage."""
    for run in runs:
        records = json.loads((run / "items.json").read_text()).get("before", [])
        replies = {r["uid"]: r["reply"] for r in records if r.get("task") == "gen" and "reply" in r}
        if replies:
            return replies
    raise SystemExit(f"--first-word: none of {len(runs)} runs (first {runs[0]}) recorded its vanilla replies")


@torch.no_grad()
def model_margins(cfg, path: str, split: str, keep=lambda uid: True) -> dict[str, list[float]]:
    """{modality: margins} over the split's generation questions `keep` admits, each prompt alone (no padding)."""
    from hydra.utils import instantiate

    from unlearn.data.collate import collate
    from unlearn.eval.items import flatten
    from unlearn.eval.protocol import EmbeddedPrompts
    from unlearn.pipeline import evaluated_rows, load_configured

    model, proc = load_configured(cfg, path)
    model.eval()
    benchmark = instantiate(cfg.data.benchmark)
    items = [it for it in flatten(split, evaluated_rows(benchmark, split, None), proc.pixel_values)
             if it.task == "gen" and keep(it.uid)]
    prompts, out = EmbeddedPrompts(), {}
    for it in items:
        batch = collate([prompts.example(proc, it)], proc.tokenizer.pad_token_id)
        batch.pop("labels")
        logits = model(**batch).logits[:, -1]
        out.setdefault(it.modality, []).append(float(first_token_margins(logits)[0]))
    return out


def table(rows: dict[int, dict[str, dict]]) -> str:
    lines = ["| teach seed | modality | questions | median margin (nats) | 10th percentile | share under "
             f"{NEAR:g} nat |", "|---:|---|---:|---:|---:|---:|"]
    for seed in sorted(rows):
        for mod, s in sorted(rows[seed].items()):
            lines.append(f"| {seed} | {mod} | {s['n']} | {s['median']:.2f} | {s['p10']:.2f} | {s['near']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> str:
    from unlearn.config import compose_config

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sweep", type=Path, required=True)
    ap.add_argument("--cache", type=Path, help="the sweep's cache (default: DIR/../cache)")
    ap.add_argument("--split", default="retain")
    ap.add_argument("--base", action="append", default=[], help="the sweep's --base overrides (repeatable)")
    ap.add_argument("--first-word", help="only questions whose vanilla reply starts with this word")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    cache = args.cache or args.sweep.parent / "cache"
    cfg = compose_config(args.base, tempfile.mkdtemp(), cache)
    models = seed_runs(args.sweep)
    if not models:
        raise SystemExit(f"--sweep {args.sweep}: no finished run (*/*/seed*/metrics.json) names its source model")
    rows = {}
    for seed, (path, runs) in models.items():
        keep = lambda uid: True  # noqa: E731
        if args.first_word:
            replies = vanilla_replies(runs)
            keep = lambda uid, r=replies: r.get(uid, "").split()[:1] == [args.first_word]  # noqa: E731
        rows[seed] = {mod: margin_summary(m) for mod, m in model_margins(cfg, path, args.split, keep).items()}
    which = f" whose vanilla reply starts with {args.first_word!r}" if args.first_word else ""
    command = " ".join(["python -m bench.first_word_margin --sweep", str(args.sweep)]
                       + (["--first-word", args.first_word] if args.first_word else []))
    text = (f"First-token margins on the {args.split} split's generation questions{which} (`{command}`):\n\n"
            f"{table(rows)}\n")
    print(text)
    if args.out:
        from unlearn.io import write_text

        write_text(args.out, text)
    return text


if __name__ == "__main__":
    main()
