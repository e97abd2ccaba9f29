"""Where does a vanilla model keep the benchmark's facts? MC accuracy with parts of the network zeroed.

For one vanilla model (the embedded default, or the organism with `experiment=organism`), evaluates
multiple-choice accuracy on the forget and retain people, image+text and text-only, with the outputs of
chosen modules replaced by zeros (forward hooks, removed afterwards): all MLPs of a tower, all attention
blocks of a tower, the projector, and each layer's MLP or attention alone. In a residual network, zeroing
a block's output removes its contribution and leaves the rest of the computation intact; what survives
is what the other blocks (and the embeddings) carry. Results and reading: docs/organism.md.

    python -m bench.organism_knockout --out /tmp/organism/default.json
    python -m bench.organism_knockout --out /tmp/organism/organism.json experiment=organism
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SPLITS = ("forget", "retain")
MODS = ("multimodal", "text")
TOWERS = {"language": r"model\.language_model\.layers\.(\d+)", "vision": r"model\.vision_tower\..*layers\.(\d+)"}
BLOCKS = {"mlp": r"\.mlp", "attn": r"\.self_attn"}


def _zero(module, args, output):
    if isinstance(output, tuple):  # attention returns (output, weights)
        return (torch.zeros_like(output[0]), *output[1:])
    return torch.zeros_like(output)


def modules(model, pattern: str) -> list[str]:
    """Names of the modules fully matching `pattern`; none is an error (a knockout that hooks nothing)."""
    names = [n for n, _ in model.named_modules() if re.fullmatch(pattern, n)]
    if not names:
        raise ValueError(f"knockout pattern {pattern!r} matches no module")
    return names


@contextlib.contextmanager
def zeroed(model, names: list[str]):
    """Zero the outputs of the named modules inside the block; hooks always removed."""
    table = dict(model.named_modules())
    handles = [table[n].register_forward_hook(_zero) for n in names]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def knockouts(model) -> dict[str, str]:
    """label -> module-name pattern: whole towers first, then each layer."""
    out = {"none": None}
    for tower, prefix in TOWERS.items():
        for block, suffix in BLOCKS.items():
            out[f"{tower} {block}: all layers"] = prefix + suffix
    out["projector"] = r"model\.multi_modal_projector"
    for tower, prefix in TOWERS.items():
        layers = sorted({int(m.group(1)) for n, _ in model.named_modules() if (m := re.fullmatch(prefix, n))})
        for i in layers:
            for block, suffix in BLOCKS.items():
                out[f"{tower} {block}: layer {i}"] = prefix.replace(r"(\d+)", str(i)) + suffix
    return out


def measure(overrides: list[str], cache: Path, only: str | None = None) -> dict:
    import lightning as L
    from hydra.utils import instantiate

    from unlearn.config import compose_config
    from unlearn.pipeline import RunContext, ensure_vanilla, evaluate, load_configured

    cfg = compose_config(["logger=none", "eval.tasks=[mc]", "eval.mc_also=null", *overrides], "/tmp/knockout",
                         cache)
    L.seed_everything(cfg.seed)
    bench = instantiate(cfg.data.benchmark)
    source = ensure_vanilla(cfg, bench)
    model, proc = load_configured(cfg, source)
    ctx = RunContext(cfg, bench, model, proc, Path("/tmp/knockout"))
    results = {"source": str(source), "overrides": overrides, "rows": {}}
    for label, pattern in knockouts(model).items():
        if only and label != "none" and not re.search(only, label):
            continue
        names = modules(model, pattern) if pattern else []
        start = time.perf_counter()
        with zeroed(model, names):
            metrics, _ = evaluate(ctx, "after", list(SPLITS))
        row = {f"{s}/{m}": metrics[f"after/{s}/{m}/mc_acc"] for s in SPLITS for m in MODS}
        row["modules"] = len(names)
        results["rows"][label] = row
        print(f"{label:28s} " + " ".join(f"{row[f'{s}/{m}']:.3f}" for s in SPLITS for m in MODS)
              + f"  ({len(names)} modules, {time.perf_counter() - start:.0f} s)", flush=True)
    return results


def table(results: dict) -> str:
    head = "| zeroed | forget mm | forget txt | retain mm | retain txt |"
    lines = [head, "|---|---:|---:|---:|---:|"]
    for label, row in results["rows"].items():
        lines.append(f"| {label} | " + " | ".join(f"{row[f'{s}/{m}']:.3f}" for s in SPLITS for m in MODS) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="JSON of every row")
    p.add_argument("--cache", default=os.environ.get("UNLEARN_CACHE", str(ROOT / ".cache")))
    p.add_argument("--only", help="regex: run only knockouts whose label matches (and none)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides choosing the vanilla model, e.g. experiment=organism")
    args = p.parse_args()
    os.environ.setdefault("WANDB_MODE", "disabled")
    logging.basicConfig(level=logging.WARNING)
    results = measure(args.overrides, Path(args.cache), args.only)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print("\n" + table(results))


if __name__ == "__main__":
    main()
