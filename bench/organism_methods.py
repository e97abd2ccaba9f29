"""What the papers lead us to expect, checked on the default vanilla model and on the model organism.

Per model (default | organism) and seed: MANU at alpha 1, 2 and 5 % and GA trained on image+text forget
data (lr 5e-4, its default recipe when docs/organism.md was measured, and lr 1e-4), plus MANU at 10, 20 and 30 % to see where pruning starts to
bite; each from that seed's cached vanilla model (the seed drives stage 2, i.e. the vanilla model, and the
method). MC accuracy only. Prints mean ± sample std over seeds of the MC drops (before - after), to read
against what the papers lead us to expect:
  MANU at alpha <= 5 %: forget drop >= 0.10 in both modalities with retain drop <= 0.05 (mean of seeds);
  GA on multimodal data: the image+text forget drop >= 2x the text-only one.

    python -m bench.organism_methods --out /tmp/organism/methods --models default organism --seeds 0 1 2
Results and reading: docs/organism.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from bench.run_log import RunLog, quiet_sweep

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"default": [], "organism": ["experiment=organism"],
          "organism_lora": ["experiment=organism", "finetune.lora.enabled=true"]}  # stage 2 by LoRA
SETTINGS = {"manu 1": ["method=manu", "manu.alpha=1"], "manu 2": ["method=manu", "manu.alpha=2"],
            "manu 5": ["method=manu", "manu.alpha=5"],
            # lr 5e-4: GA's default on both models when docs/organism.md was measured (now each model's
            # equal-cost lr, model.unlearn_lr), pinned so that the page's rows reproduce
            "ga (image+text data)": ["method=ga", "data.forget_modality=multimodal", "method.optimizer.lr=5e-4"],
            # beyond the papers' range, for the frontier: where pruning starts to bite, and a gentler GA
            "manu 10": ["method=manu", "manu.alpha=10"], "manu 20": ["method=manu", "manu.alpha=20"],
            "manu 30": ["method=manu", "manu.alpha=30"],
            "ga lr 1e-4 (image+text data)": ["method=ga", "data.forget_modality=multimodal", "method.optimizer.lr=1e-4"]}
COLS = ("forget/multimodal", "forget/text", "retain/multimodal", "retain/text")


def run_one(overrides: list[str], out: Path, cache: Path) -> dict:
    from unlearn.config import compose_config
    from unlearn.pipeline import run

    cfg = compose_config(["logger=none", "save_model=false", "eval.tasks=[mc]", "eval.mc_also=null", *overrides],
                         out, cache)
    start = time.perf_counter()
    metrics = run(cfg)
    drops = {c: metrics[f"before/{c}/mc_acc"] - metrics[f"after/{c}/mc_acc"] for c in COLS}
    return {"drops": drops, "before": {c: metrics[f"before/{c}/mc_acc"] for c in COLS},
            "wall_s": time.perf_counter() - start}


def summary(rows: list[dict]) -> str:
    lines = ["| model | setting | seeds | " + " | ".join(f"{c} drop" for c in COLS) + " |",
             "|---|---|---:|" + "---:|" * len(COLS)]
    for model in MODELS:
        for setting in SETTINGS:
            rs = [r for r in rows if r["model"] == model and r["setting"] == setting]
            if not rs:
                continue
            cells = []
            for c in COLS:
                v = [r["drops"][c] for r in rs]
                cells.append(f"{statistics.mean(v):+.3f}" + (f" ± {statistics.stdev(v):.3f}" if len(v) > 1 else ""))
            lines.append(f"| {model} | {setting} | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--models", nargs="+", default=["default", "organism"], choices=list(MODELS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--cache", default=os.environ.get("UNLEARN_CACHE", str(ROOT / ".cache")))
    p.add_argument("--table-only", action="store_true")
    args = p.parse_args()
    quiet_sweep()
    out = Path(args.out)
    log = RunLog(out)
    rows = log.read()
    done = {(r["model"], r["setting"], r["seed"]) for r in rows}
    if not args.table_only:
        for seed in args.seeds:
            for model in args.models:
                for setting, overrides in SETTINGS.items():
                    if (model, setting, seed) in done:
                        continue
                    r = run_one([*MODELS[model], *overrides, f"seed={seed}"],
                                log.run_dir(out / model / setting / f"seed{seed}"), Path(args.cache))
                    r.update(model=model, setting=setting, seed=seed)
                    rows.append(r)
                    log.append(r)
                    print(f"{model} {setting} seed {seed}: drops " + " ".join(f"{c} {r['drops'][c]:+.3f}" for c in COLS)
                          + f" ({r['wall_s']:.0f} s)", flush=True)
    print(summary(rows))


if __name__ == "__main__":
    main()
