"""Does a finished sweep still describe today's code? Rerun some of its runs and compare every metric.

Why: a results page is made once and read for sessions after; code changes in between (a fix in the
evaluation, a setting's default) can move what it reports without anyone re-running it. This reruns runs of a
sweep made by `unlearn.frontier` (their `overrides.json`) the way its workers ran them (in process, one torch
thread), on the same vanilla models, and prints, per run, how many metrics are bit-identical and the largest
difference. On one machine the same code repeats itself exactly (shared/NOTES.md), so any difference is the
code's, or the vanilla model's if `--cache` holds another one.

Run: `python -m bench.rerun_check SWEEP_DIR --cache CACHE [--runs 'manu/alpha=20/seed0' ...] [--out DIR]`
(`--runs`: globs relative to SWEEP_DIR, default every run at seed 0; CACHE must hold the sweep's vanilla
models under today's cache keys, e.g. links to them).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path


def compare(old: dict, new: dict) -> tuple[int, int, float, str]:
    """(equal, compared, largest |difference|, its key) over the numeric metrics both runs report, timings
    excluded (they are the machine's, not the code's)."""
    keys = [k for k in old if k in new and isinstance(old[k], (int, float)) and isinstance(new[k], (int, float))
            and not k.startswith("time/")]
    equal, worst, worst_key = 0, 0.0, ""
    for k in keys:
        a, b = float(old[k]), float(new[k])
        if a == b or (math.isnan(a) and math.isnan(b)):
            equal += 1
        elif abs(a - b) > worst or math.isnan(a - b):
            worst, worst_key = abs(a - b), k
    return equal, len(keys), worst, worst_key


def rerun(run_dir: Path, cache: Path, out: Path) -> dict:
    from unlearn.config import compose_config
    from unlearn.pipeline import run

    overrides = json.loads((run_dir / "overrides.json").read_text())
    return run(compose_config(overrides, out, cache))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sweep", help="a sweep dir of unlearn.frontier")
    parser.add_argument("--cache", required=True, help="cache dir holding the sweep's vanilla models")
    parser.add_argument("--runs", nargs="+", default=["*/*/seed0"], help="globs of run dirs under the sweep")
    parser.add_argument("--out", help="where the reruns go (default: a temporary dir)")
    args = parser.parse_args()
    import os

    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)  # as the sweep's workers (unlearn/frontier.py)
    from unlearn.runtime import quiet_libraries

    quiet_libraries()
    sweep = Path(args.sweep)
    runs = sorted({d for g in args.runs for d in sweep.glob(g) if (d / "overrides.json").is_file()})
    if not runs:
        raise SystemExit(f"no run with an overrides.json matches {args.runs} under {sweep}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        for d in runs:
            rel = d.relative_to(sweep)
            new = rerun(d, Path(args.cache).resolve(), out / rel)
            old = json.loads((d / "metrics.json").read_text())["metrics"]
            rows.append((str(rel), *compare(old, new)))
    print("| run | metrics bit-identical | largest difference | in |\n|---|---:|---:|---|")
    for rel, equal, n, worst, key in rows:
        print(f"| {rel} | {equal} of {n} | {worst:.3g} | {key or '-'} |")


if __name__ == "__main__":
    main()
