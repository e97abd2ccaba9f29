"""Where the spread over seeds comes from: the taught model (`teach_seed`) or the method's draws (`seed`).

Why: issue 11 asks for a headline spread of 0.05 or less over 3 seeds, and a seed so far changed both the
vanilla model and the method's data order. This runs every method at its default strength for every
(teach_seed, seed) pair and splits each headline cell's spread into
- within a model: the std over method seeds on one taught model (root mean of the per-model variances);
- between models: the std over taught models of the mean over method seeds;
beside the spread the frontier reports (teach_seed = seed, the diagonal) and over all pairs.

Run: `.venv/bin/python -m bench.seed_variance --out DIR [--cache DIR] [--jobs 2] [--docs docs/seed_variance.md]
[-- HYDRA OVERRIDES]` (resumable: finished runs are kept). The models of teach seeds 0-2 are the ones the
frontier sweep teaches, so pointing --cache at its cache skips the teaching.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from unlearn.eval.table import MODALITIES
from unlearn.frontier import METHODS, method_order, worker_pool
from unlearn.report import MOD_LABEL, independent_std, mean_std, metric, question_count
from unlearn.runtime import torch_threads

CELLS = tuple((split, mod) for mod in MODALITIES for split in ("forget", "retain"))


def run_dir(out: Path, method: str, teach_seed: int, seed: int) -> Path:
    return out / method / f"teach{teach_seed}" / f"seed{seed}"


def run_one(out: Path, method: str, teach_seed: int, seed: int, base: Sequence[str], cache: Path) -> float:
    from unlearn.config import compose_config
    from unlearn.pipeline import run

    start = time.perf_counter()
    overrides = [f"method={method}", f"seed={seed}", f"teach_seed={teach_seed}", "logger=none",
                 "save_model=false", *base]
    run(compose_config(overrides, run_dir(out, method, teach_seed, seed), cache))
    return time.perf_counter() - start


def sweep(out: Path, methods, teach_seeds, seeds, base, cache: Path, jobs: int, diagonal: bool = False) -> int:
    """Every unfinished run (`diagonal`: only seed = teach_seed); the first run of each taught model goes
    first, so no two workers teach it."""
    todo = [(m, t, s) for t in teach_seeds for m in methods for s in seeds
            if (s == t or not diagonal) and not (run_dir(out, m, t, s) / "metrics.json").is_file()]
    firsts = list({t: (m, t, s) for m, t, s in reversed(todo)}.values())
    rest = [job for job in todo if job not in firsts]
    if jobs <= 1 or not todo:
        with torch_threads(1):  # as in the workers, so --jobs 1 reads and teaches the same one-thread models
            for job in firsts + rest:
                run_one(out, *job, base, cache)
        return len(todo)
    with worker_pool(jobs, out, base, cache, todo[0][0]) as pool:
        for wave in (w for w in (firsts, rest) if w):
            list(pool.map(run_one, *zip(*((out, m, t, s, base, cache) for m, t, s in wave))))
    return len(todo)


def load(out: Path) -> dict[tuple[str, int, int], dict]:
    runs = {}
    for f in sorted(out.glob("*/teach*/seed*/metrics.json")):
        runs[(f.parent.parent.parent.name, int(f.parent.parent.name.removeprefix("teach")),
              int(f.parent.name.removeprefix("seed")))] = json.loads(f.read_text())["metrics"]
    return runs


def split_spread(values: dict[tuple[int, int], float]) -> dict[str, float | None]:
    """{(teach_seed, seed): value} -> the spreads the module doc names (None where too few runs)."""
    teach = sorted({t for t, _ in values})
    per_model = [[v for (t, _), v in values.items() if t == tt] for tt in teach]
    within = [mean_std(vs)[1] for vs in per_model if len(vs) > 1]
    diagonal = [v for (t, s), v in values.items() if t == s]
    return {
        "diagonal": mean_std(diagonal)[1] if len(diagonal) > 1 else None,
        "all": mean_std(list(values.values()))[1] if len(values) > 1 else None,
        "within": math.sqrt(sum(w * w for w in within) / len(within)) if within else None,
        "between": mean_std([mean_std(vs)[0] for vs in per_model])[1] if len(per_model) > 1 else None,
    }


def cell_values(runs: dict[tuple[str, int, int], dict], method: str, key: str,
                diagonal: bool = False) -> dict[tuple[int, int], float]:
    """{(teach_seed, seed): `key`} over `method`'s runs (`diagonal`: only teach_seed = seed)."""
    return {(t, s): v for (m, t, s), mets in runs.items()
            if m == method and (s == t or not diagonal) and (v := metric(mets, key)) is not None}


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def table(runs: dict[tuple[str, int, int], dict], limit: float = 0.05) -> str:
    cols = ["diagonal", "all", "within", "between"]
    header = ["method", "cell", "mean", "std: teach = seed", "std: all pairs", "within a model", "between models",
              "independent questions"]
    lines = ["| " + " | ".join(header) + " |", "|---|---|---:|" + "---:|" * (len(cols) + 1)]
    stage = {"vanilla": "before"}
    methods = ["vanilla"] + method_order({k[0] for k in runs})  # a method of your own too (it was dropped)
    for method in methods:
        for split, mod in CELLS:
            key = f"{stage.get(method, 'after')}/{split}/{mod}/mc_acc"
            if method == "vanilla":  # one value per taught model, from any method's runs
                vals = {(t, t): v for (_, t, _), mets in sorted(runs.items()) if (v := metric(mets, key)) is not None}
            else:
                vals = cell_values(runs, method, key)
            if not vals:
                continue
            spreads = split_spread(vals)
            cells = [_fmt(spreads[c]) + (" *" if (spreads[c] or 0) > limit else "") for c in cols]
            mean = mean_std(list(vals.values()))[0]
            n = question_count(list(runs.values()), key)
            cells.append(_fmt(independent_std(mean, n)) if n else "n/a")
            lines.append(f"| {method} | {MOD_LABEL[mod]} {split} MC | {mean:.3f} | " + " | ".join(cells) + " |")
    notes = [f"MC accuracy after unlearning (vanilla: before), each method at its default strength; * = wider "
             f"than {limit:g}.",
             "teach = seed: the pairs the frontier runs (a seed teaches the model and draws the method's data).",
             "within a model: root mean over taught models of the std over method seeds (the method's draws);",
             "between models: std over taught models of the mean over method seeds (the taught model).",
             "vanilla: one value per taught model, so only the between-models column applies.",
             "independent questions: sqrt(p (1 - p) / n) at the cell's mean p over its n questions, the spread if "
             "each model got each question right independently (a reference: models that forget the same "
             "questions spread less)."]
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes)


def paired(runs: dict[tuple[str, int, int], dict]) -> str | None:
    """The methods' MC drops compared run by run on the same taught model (unlearn.report.paired_seed_table):
    the spread between taught models that every method shares cancels there."""
    from unlearn.report import Run, SeedGroup, paired_seed_table

    groups = [SeedGroup(m, m, [Run(m, m, [], mets, Path("."), seed=s, teach_seed=t)
                               for (mm, t, s), mets in sorted(runs.items()) if mm == m])
              for m in method_order({k[0] for k in runs})]
    return paired_seed_table(groups)


def diagonal_summary(runs: dict[tuple[str, int, int], dict], limit: float = 0.05) -> dict:
    """Over the teach_seed = seed runs: the taught models, the lowest vanilla MC cell, and over the method
    cells (method x forget/retain x modality) how many are wider than `limit`, their root-mean-square std
    (one number for a recipe's spread) and the widest."""
    diag = {k: v for k, v in runs.items() if k[1] == k[2]}
    models = sorted({t for _, t, _ in diag})
    firsts = {t: next(v for k, v in sorted(diag.items()) if k[1] == t) for t in models}
    vanilla = [metric(firsts[t], f"before/{split}/{mod}/mc_acc") for t in models for split, mod in CELLS]
    stds = []
    for method in sorted({m for m, _, _ in diag}):
        for split, mod in CELLS:
            vals = cell_values(diag, method, f"after/{split}/{mod}/mc_acc")
            if len(vals) > 1:
                stds.append(mean_std(list(vals.values()))[1])
    if not stds:  # one taught model: no cell has a spread
        raise SystemExit("the sweep's diagonal has one taught model: a spread needs two or more seeds")
    return {"models": models, "vanilla_min": min(v for v in vanilla if v is not None), "cells": len(stds),
            "wide": sum(s > limit for s in stds), "rms": math.sqrt(sum(s * s for s in stds) / len(stds)),
            "max": max(stds)}


def compare_table(named: Sequence[tuple[str, dict]], limit: float = 0.05) -> str:
    """Markdown: one row per setting (a teaching recipe, the methods' strengths: its sweep dir's diagonal),
    from `diagonal_summary`."""
    lines = ["| setting | taught models | lowest vanilla MC cell | cells wider than "
             f"{limit:g} | RMS std over cells | widest |", "|---|---|---:|---:|---:|---:|"]
    for name, runs in named:
        s = diagonal_summary(runs, limit)
        lines.append(f"| {name} | {len(s['models'])} (seeds {', '.join(map(str, s['models']))}) | "
                     f"{s['vanilla_min']:.3f} | {s['wide']} of {s['cells']} | {s['rms']:.3f} | {s['max']:.3f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--cache", type=Path, default=None, help="default: OUT/cache")
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--teach-seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--diagonal", action="store_true", help="only seed = teach_seed (the frontier's pairs)")
    p.add_argument("--docs", type=Path, default=None, help="write the page here (default OUT/seed_variance.md)")
    p.add_argument("--compare", nargs="+", metavar="NAME=DIR", default=None,
                   help="print one row per recipe (its sweep dir's teach_seed = seed runs) and run nothing")
    p.add_argument("overrides", nargs="*", help="Hydra overrides for every run (after --)")
    a = p.parse_args(argv)
    if a.compare:
        print(compare_table([(n, load(Path(d))) for n, d in (c.split("=", 1) for c in a.compare)]))
        return
    if a.out is None:
        p.error("--out is required unless --compare is given")
    cache = a.cache or a.out / "cache"
    start = time.perf_counter()
    n = sweep(a.out, a.methods, a.teach_seeds, a.seeds, a.overrides, cache, a.jobs, a.diagonal)
    took = time.perf_counter() - start
    runs = load(a.out)
    command = "python -m bench.seed_variance " + shlex.join(sys.argv[1:] if argv is None else list(argv))
    page = (f"# Seed spread: the taught model or the method's draws\n\n`{command}`\n\n{len(runs)} runs "
            f"({n} run by this invocation in {took:.0f} s, --jobs {a.jobs}).\n\n{table(runs)}\n")
    pairs = paired(runs)
    if pairs:
        page += f"\n## Seed by seed\n\n{pairs}\n"
    dest = a.docs or a.out / "seed_variance.md"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(page)
    print(page)


if __name__ == "__main__":
    main()
