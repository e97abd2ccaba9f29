"""Run several of these scripts in turn, in one launch of N CPU processes; rank 0 saves {script: its result}.

`python in_one_launch.py --devices D --cache C --out O :: manu_pass --also eval_odd :: gradient_update --case ...`:
each `::` starts a script (its module name in tests/scripts/) and the arguments it takes after --devices, --cache
and --out. A launch costs about 5 s of imports per process before any work (two processes 10-12 s on 2 cores), so
tests/test_ddp.py reads its one- and two-process cases from one launch per process count instead of one per script.

Each script runs as its own launch would: its main() from the torch seed a fresh process starts with, its own fresh
model, and the same process group (made by the first script's first Trainer, as within one script's cases).
Lightning's `ddp` launcher re-runs this command for the other ranks, which run the same scripts in the same order.
"""

import argparse
import importlib
import sys
import time
from pathlib import Path

from ddp_script import finish, is_rank_zero  # first: puts the repository on sys.path

import torch


def scripts(argv: list[str]) -> tuple[list[str], list[list[str]]]:
    """(the launch's own arguments, [[script, its arguments...], ...]), split at each `::`."""
    groups, current = [], []
    for token in argv:
        if token == "::":
            groups.append(current)
            current = []
        else:
            current.append(token)
    groups.append(current)
    head, runs = groups[0], groups[1:]
    if not runs or any(not run for run in runs):
        raise SystemExit(f"no script after a `::` in {' '.join(argv)}")
    names = [run[0] for run in runs]
    if len(set(names)) != len(names):
        raise SystemExit(f"a script named twice: {names} (its cases go in one run of it)")
    return head, runs


def main():
    head, runs = scripts(sys.argv[1:])
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, required=True)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(head)
    fresh_seed = torch.initial_seed()  # a fresh process's default seed: each script starts from it
    out = Path(args.out)
    results = {}
    for name, *rest in runs:
        written = out.with_name(f"{out.stem}.{name}.pt")
        torch.manual_seed(fresh_seed)
        start = time.perf_counter()
        importlib.import_module(name).main(["--devices", str(args.devices), "--cache", args.cache,
                                            "--out", str(written), *rest])
        print(f"{name}: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)  # where a launch goes
        if is_rank_zero():
            results[name] = torch.load(written, weights_only=False)
    if is_rank_zero():
        torch.save(results, out)


if __name__ == "__main__":
    main()
    finish()
