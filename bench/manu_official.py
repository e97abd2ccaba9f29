"""The project's MANU selection against the authors' (`manu.selection=official`) on the embedded default.

A ladder of settings, each one deviation away from the previous, from the project's default to the
authors' selection; the seeded ones (the official shuffles and retain subset) run once per seed of
`manu.official.seed`. Per run: MC accuracy after pruning (forget / retain x image+text / text-only) and
the Jaccard overlap of its pruned set with the project's, per tower, in one unit space: intermediate unit
j of layer l (project: input j of fc2 / down_proj; official: output row j of fc1 / gate_proj / up_proj)
or hidden channel j of layer l (official: output row j of fc2 / down_proj, which the project never picks).

    nice -n 10 .venv/bin/python -m bench.manu_official --seeds 0,1,2 --out /tmp/manu_official
Results: docs/manu_official.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

from safetensors.torch import load_file

from bench.run_log import RunLog, quiet_sweep

ROOT = Path(__file__).resolve().parents[1]
OFFICIAL = "manu.selection=official"
LADDER = [  # (label, overrides, seeded)
    ("project (default)", [], False),
    ("+ padding counted", ["manu.mask_padding=false"], False),
    ("+ their statistics (per position, chunks, clamp, >= threshold; project unit, per layer, full retain)",
     [OFFICIAL, "manu.official.unit=intermediate", "manu.official.pooled_layers=false",
      "manu.official.retain_subset=false"], True),
    ("+ their unit (output rows of every hooked Linear)",
     [OFFICIAL, "manu.official.pooled_layers=false", "manu.official.retain_subset=false"], True),
    ("+ retain subset of forget's size", [OFFICIAL, "manu.official.pooled_layers=false"], True),
    ("+ pooled layers, last 3 layers (= official at the project's batch size 64)", [OFFICIAL], True),
    ("+ their batch size 4 (= official, as experiment=manu_official)", [OFFICIAL, "manu.batch_size=4"], True),
]
METRICS = [f"after/{s}/{m}/mc_acc" for s in ("forget", "retain") for m in ("multimodal", "text")]


def units(masks: dict, neuron_of_unit: str) -> dict[str, set]:
    """tower -> set of (layer, kind, index) picked."""
    out: dict[str, set] = {"vision": set(), "language": set()}
    for name, mask in masks.items():
        tower = "vision" if "vision" in name else "language"
        layer = [p for p in name.split(".") if p.isdigit()][-1]
        leaf = name.rsplit(".", 1)[1]
        kind = "mid" if neuron_of_unit == "input" or leaf in ("fc1", "gate_proj", "up_proj") else "hidden"
        out[tower] |= {(layer, kind, int(j)) for j in mask.nonzero().flatten().tolist()}
    return out


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def run_one(overrides: list[str], out: Path, cache: Path) -> dict:
    from unlearn.config import compose_config
    from unlearn.pipeline import run

    cfg = compose_config(["method=manu", "logger=none", "save_model=false", "eval.before=false",
                          "eval.tasks=[mc]", *overrides], out, cache)
    metrics = run(cfg)
    from safetensors import safe_open

    with safe_open(str(out / "manu" / "mask.safetensors"), "pt") as f:
        neuron = f.metadata()["neuron"]
    masks = load_file(str(out / "manu" / "mask.safetensors"))
    summary = json.loads((out / "metrics.json").read_text())
    return {"metrics": {k: metrics[k] for k in METRICS}, "neuron": neuron,
            "pruned": summary["artifacts"]["manu"]["pruned"],
            "clamped": summary["artifacts"]["manu"].get("clamped_on_rank0"),
            "units": {t: sorted(v) for t, v in units(masks, neuron).items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--out", default="/tmp/manu_official")
    p.add_argument("--cache", default=os.environ.get("UNLEARN_CACHE", str(ROOT / ".cache")))
    args = p.parse_args()
    quiet_sweep()
    out = Path(args.out)
    log = RunLog(out)
    done = {r["key"]: r for r in log.read()}
    seeds = [int(s) for s in args.seeds.split(",")]
    for i, (label, overrides, seeded) in enumerate(LADDER):
        for seed in (seeds if seeded else [None]):
            o = overrides + ([f"manu.official.seed={seed}"] if seeded else [])
            key = " ".join(o) or "(default)"
            if key in done:
                continue
            r = run_one(o, log.run_dir(out / f"run_{len(done):03d}"), Path(args.cache))
            r.update(key=key, label=label, seed=seed)
            log.append(r)
            done[key] = r
            print(f"{label} seed={seed}: " + ", ".join(f"{k.split('/', 1)[1]} {v:.3f}" for k, v in r["metrics"].items()),
                  flush=True)

    project = next(r for r in done.values() if r["label"] == LADDER[0][0])
    ref = {t: {tuple(u) for u in v} for t, v in project["units"].items()}
    print("\n| setting | runs | pruned vision / language | Jaccard vision | Jaccard language | hidden-row share vision / language | "
          + " | ".join(m.split("/", 1)[1].replace("/mc_acc", "") for m in METRICS) + " |")
    print("|" + "---|" * (6 + len(METRICS)))
    for label, _, _ in LADDER:
        rows = [r for r in done.values() if r["label"] == label]
        if not rows:
            continue

        def stat(values):
            return f"{statistics.mean(values):.3f}" + (f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else "")

        jac = {t: [jaccard({tuple(u) for u in r["units"][t]}, ref[t]) for r in rows] for t in ("vision", "language")}
        hidden = {t: [sum(u[1] == "hidden" for u in r["units"][t]) / max(1, len(r["units"][t])) for r in rows]
                  for t in ("vision", "language")}
        pruned = {t: [r["pruned"][t]["pruned"] for r in rows] for t in ("vision", "language")}
        print(f"| {label} | {len(rows)} | {stat(pruned['vision'])} / {stat(pruned['language'])} | {stat(jac['vision'])} | {stat(jac['language'])} | "
              f"{stat(hidden['vision'])} / {stat(hidden['language'])} | "
              + " | ".join(stat([r["metrics"][m] for r in rows]) for m in METRICS) + " |")
    clamped = {r.get("clamped") for r in done.values() if r.get("clamped") is not None}
    print(f"\nactivations clamped at +-1e3 in the official runs: {sorted(clamped)}")


if __name__ == "__main__":
    main()
