"""Does a finished sweep still describe today's code? Rerun some of its runs and compare every metric.

Why: a results page is made once and read for sessions after; code changes in between (a fix in the
evaluation, a setting's default) can move what it reports without anyone re-running it. This reruns runs of a
sweep made by `unlearn.frontier` (their `overrides.json`) the way the sweep ran them (in process, on one torch
thread when the sweep used workers, `--jobs` >= 2, else on torch's default), on the same vanilla models, with the
before-evaluation recomputed rather than read from a cache, settings added since at the values the run had
(`LATER_SETTINGS`), and prints per run how many metrics are
bit-identical, the largest difference, and the metrics only one of the two runs has. On one machine the same
code repeats itself exactly (shared/NOTES.md), so any difference is the code's.

Run: `python -m bench.rerun_check SWEEP_DIR --cache CACHE [--runs 'manu/alpha=20/seed0' ...] [--out DIR]`
(`--runs`: globs relative to SWEEP_DIR, default every run at seed 0; CACHE must hold the sweep's vanilla
models under today's cache keys, e.g. links to them: a run whose vanilla model is missing is refused, not
taught afresh).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path


def _numeric(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def compare(old: dict, new: dict) -> tuple[int, int, float, str, list[str]]:
    """(equal, compared, largest |difference|, its key, keys only one run reports as a number) over the
    numeric metrics, timings excluded (they are the machine's, not the code's)."""
    def numeric_keys(m: dict) -> set:
        return {k for k, v in m.items() if _numeric(v) and not k.startswith("time/")}

    both = sorted(numeric_keys(old) & numeric_keys(new))
    one_side = sorted(numeric_keys(old) ^ numeric_keys(new))
    equal, worst, worst_key = 0, 0.0, ""
    for k in both:
        a, b = float(old[k]), float(new[k])
        if a == b or (math.isnan(a) and math.isnan(b)):
            equal += 1
        elif not math.isnan(worst) and (math.isnan(a - b) or abs(a - b) > worst):  # a NaN stays the worst
            worst, worst_key = abs(a - b), k
    return equal, len(both), worst, worst_key, one_side


def sweep_threads(sweep: Path) -> int | None:
    """The torch threads the sweep's runs had: what its timing says (1 from the thirteenth session on, whatever
    `--jobs`); before, 1 in its workers (`--jobs` >= 2) and torch's default in process (`--jobs 1`)."""
    from unlearn.frontier import TIMING_FILE

    timing = sweep / TIMING_FILE
    entries = json.loads(timing.read_text()) if timing.is_file() else []
    # None: torch's default
    threads = {e.get("threads") or (1 if e.get("jobs", 1) >= 2 else None) for e in entries}
    if len(threads) > 1:
        jobs = sorted({e.get("jobs", 1) for e in entries})
        raise SystemExit(f"{timing}: the sweep's runs had different thread counts (--jobs {jobs}, before and after "
                         "the thirteenth session); give --threads for the runs checked")
    return threads.pop() if threads else None


# settings added after runs were made, and the value that reproduces those runs: (config path, override)
LATER_SETTINGS = (("eval.share_prompt", "eval.share_prompt=false"),  # whole-row likelihoods before it
                  ("eval.shot_order", "eval.shot_order=lookup"))  # shot blocks in the looked-up rows' order before it


def as_it_ran(overrides: list[str], config: dict | None) -> list[str]:
    """The run's overrides, plus the old value of each later setting its resolved config (config.json) lacks;
    `config` None: a run from before runs wrote config.json, older than every later setting."""
    config = config or {}
    extra = []
    for path, override in LATER_SETTINGS:
        node = config
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None and not any(o.split("=", 1)[0].lstrip("+~") == path for o in overrides):
            extra.append(override)
    return [*overrides, *extra]


def rerun(overrides: list[str], cache: Path, out: Path) -> dict:
    from unlearn.config import compose_config
    from unlearn.pipeline import run, vanilla_path

    if (out / "metrics.json").is_file():  # rerun by an earlier invocation into the same --out: read, not redone
        print(f"{out}: rerun earlier, read from its metrics.json", flush=True)
        return json.loads((out / "metrics.json").read_text())["metrics"]
    cfg = compose_config([*overrides, "eval.cache_before=false"], out, cache)
    if not cfg.model.path and not vanilla_path(cfg).exists():
        raise SystemExit(f"{vanilla_path(cfg)} is missing: --cache must hold the sweep's vanilla model (a link "
                         "to it under today's key); teaching a new one would compare another model")
    return run(cfg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sweep", help="a sweep dir of unlearn.frontier")
    parser.add_argument("--cache", required=True, help="cache dir holding the sweep's vanilla models")
    parser.add_argument("--runs", nargs="+", default=["*/*/seed0"], help="globs of run dirs under the sweep")
    parser.add_argument("--out", help="where the reruns go (default: a temporary dir; never inside the sweep)")
    parser.add_argument("--threads", type=int, help="torch threads (default: what the sweep's runs had)")
    args = parser.parse_args()
    sweep = Path(args.sweep).resolve()
    if args.out and Path(args.out).resolve().is_relative_to(sweep):
        raise SystemExit(f"--out {args.out} lies inside the sweep: its runs would be compared with themselves")
    threads = args.threads or sweep_threads(sweep)
    import os

    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    if threads:
        torch.set_num_threads(threads)
    from unlearn.runtime import quiet_libraries

    quiet_libraries()
    runs = sorted({d for g in args.runs for d in sweep.glob(g) if (d / "overrides.json").is_file()})
    if not runs:
        raise SystemExit(f"no run with an overrides.json matches {args.runs} under {sweep}")
    print(f"{len(runs)} runs on {threads or torch.get_num_threads()} torch thread(s)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        for d in runs:
            rel = d.relative_to(sweep)
            old = json.loads((d / "metrics.json").read_text())["metrics"]  # before the rerun writes anything
            config = json.loads((d / "config.json").read_text()) if (d / "config.json").is_file() else None
            overrides = as_it_ran(json.loads((d / "overrides.json").read_text()), config)
            new = rerun(overrides, Path(args.cache).resolve(), out / rel)
            equal, n, worst, key, one_side = compare(old, new)
            rows.append(f"| {rel} | {equal} of {n} | {worst:.3g} | {key or '-'} | {', '.join(one_side) or '-'} |")
            print(rows[-1], flush=True)  # as it goes: a later failing run keeps the earlier rows
    print("\n| run | metrics bit-identical | largest difference | in | only in one run |\n|---|---:|---:|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
