"""How long `python train.py` takes to refuse a bad setting, measured side by side.

Why: a refusal is the framework's answer to a typo, and a sweep's jobs are all checked before the first runs; it
should come in about a second, before the run's heavy imports (unlearn/before_run.py). Each case is a fresh
train.py process given its overrides, which must exit with status 1 and an `Error:` line; each figure is the median of
`--repeat` interleaved runs with its range (this shared machine's speed drifts within a session). `--against REV`
times the same commands at another commit (a temporary git worktree, this interpreter and packages) interleaved
with this checkout's, and prints the ratio. Nothing is taught or read from a cache: the refusals come first.

Run: `.venv/bin/python -m bench.refusal_times [--repeat 5] [--against REV]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from bench.cached_run import ROOT, checkout_of, median_and_range

CASES = {
    "a misspelt key (+manu.alpah=5)": ["+manu.alpah=5"],
    "a value out of range (model.manu_alpha=150)": ["model.manu_alpha=150"],
    "an lr that is no number (method=ga method.optimizer.lr=abc)": ["method=ga", "method.optimizer.lr=abc"],
    "a count of zero (method=mmunlearner mmunlearner.epochs=0)": ["method=mmunlearner", "mmunlearner.epochs=0"],
    "a sweep's second job (-m debug=fast method=ga method.optimizer.lr=1e-4,abc)":
        ["-m", "debug=fast", "method=ga", "method.optimizer.lr=1e-4,abc"],
}


def refused(overrides: list[str], root: Path, out: Path, env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "train.py", *overrides, f"hydra.run.dir={out}", f"hydra.sweep.dir={out}"],
                          cwd=root, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 1 or "Error:" not in done.stderr:
        raise SystemExit(f"{overrides} at {root} was not refused (status {done.returncode}):\n{done.stderr[-2000:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="interleaved runs per case and checkout (default 5)")
    parser.add_argument("--against", metavar="REV", help="time the same refusals at REV too, interleaved")
    args = parser.parse_args()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        roots = {"this checkout": ROOT}
        if args.against:
            roots[args.against] = stack.enter_context(checkout_of(args.against, tmp / "against"))
        env = {**os.environ, "UNLEARN_CACHE": str(tmp / "cache"), "WANDB_MODE": "offline"}
        times = {(case, where): [] for case in CASES for where in roots}
        for i in range(args.repeat):
            for case, overrides in CASES.items():
                for where, root in roots.items():
                    times[case, where].append(refused(overrides, root, tmp / f"run{i}", env))
    for case in CASES:
        print(case)
        for where in roots:
            print(f"  {where:<24} {median_and_range(times[case, where])}")
        if args.against:
            ratio = statistics.median(times[case, "this checkout"]) / statistics.median(times[case, args.against])
            print(f"  ratio, this checkout / {args.against}: {ratio:6.3f}")


if __name__ == "__main__":
    main()
