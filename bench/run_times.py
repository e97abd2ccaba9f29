"""Wall time of `python train.py method=manu` on the embedded default: first run (empty cache: data
generation and teaching the vanilla model included) and a second run that reuses the cache.

Run: `.venv/bin/python -m bench.run_times` (about 3 minutes on 2 cores; uses a fresh temporary cache).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_run(cache: Path, out: Path) -> float:
    env = {**os.environ, "UNLEARN_CACHE": str(cache), "WANDB_MODE": "disabled"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "train.py", "method=manu", "logger=none", f"hydra.run.dir={out}"], cwd=ROOT,
                   env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()  # --help, and no stray arguments
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        first = timed_run(tmp / "cache", tmp / "first")
        cached = timed_run(tmp / "cache", tmp / "cached")
    print(f"python train.py method=manu: first run {first:.1f} s (generates data, teaches the vanilla model), "
          f"cached run {cached:.1f} s: ratio {first / cached:.1f}x")


if __name__ == "__main__":
    main()
