"""Methods compared at equal cost: `python -m unlearn.frontier [--grid full|fast] [--seeds 0 1 2] --out DIR`.

Why: each method at its own default strength is not a comparison (a gentle MANU against a GA that costs
0.40 of retain accuracy). This module sweeps each method's strength knob at several seeds, then reads,
per modality, how much a method forgets by the time it has cost a fixed amount of retain accuracy.

Layout written by the sweep (and read by `report`): OUT/<method>/<knob>=<value>/seed<k>/metrics.json and
OUT/sweep_time.json (every invocation's runs, wall time and command); the pages go to --docs (default OUT):
frontier.md (the table), frontier_<modality>.png, and results.md (each method at its default strength over
seeds with issue 11's robustness checks, the likelihood metrics, the frontier, every swept setting).
`--report-only` redraws from an existing OUT without running anything; `--jobs N` runs N single-thread
worker processes (`--jobs 1`, the default, runs in this process on one thread: the same runs).

Interpolation rule (`forget_drop_at`), per method, seed and modality:
- the curve is the method's points in order of increasing strength, starting at the origin (strength 0 =
  the vanilla model: no forget drop, no retain drop);
- x = retain MC drop (or the axis `--cost untouched` / `--cost-metric rougeL` names), y = forget MC drop (both
  before - after);
- the value at budget b is read on the *first* segment, in strength order, whose retain drop reaches b
  (x_i < b <= x_{i+1}), linearly interpolated on that segment. A non-monotone curve that dips back under b
  at a stronger setting is not credited: a user raising the strength meets the first crossing first;
- a curve that never reaches b is "not reached": its value is the forget drop at the strongest swept setting
  (a lower bound on what the method gives within the budget, if forgetting grows with strength), flagged, so
  the table can mark it.
Only each seed's first run evaluates the vanilla model (eval.before); the others borrow its before/*
values, since every run of a seed starts from the same cached vanilla model.
Over seeds: mean ± sample std of the per-seed values; a cell is marked when a seed did not reach b.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import shlex
import shutil
import sys
import time
from collections import Counter
from collections.abc import Collection, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

if __name__ == "__main__":  # before the imports below (seconds): a Ctrl-C among them ends with a line, status 130
    from unlearn.runtime import ctrl_c_while_starting

    ctrl_c_while_starting()

from unlearn.eval.table import MODALITIES
from unlearn.io import config_hash, write_atomic
from unlearn.report import (MOD_LABEL, _pyplot, _save, code_key, code_label, given_checkpoint, mean_std, metric,
                            mixed_code, recorded_config, vanilla_model)

log = logging.getLogger(__name__)

BUDGET = 0.05  # retain MC drop (or drop on the chosen cost axis) at which methods are compared
# Drops are differences of k/n accuracies, made in floats: 0.98 - 0.93 is 0.04999999999999993. A cost within this of
# the budget has reached it, and a std within it of the ceiling is within it (as report.chance_std_above counts)
TOLERANCE = 1e-9
# the cost axis: retain (people the methods keep, and the set GradDiff, KL and MMUnlearner train on) or untouched
# (knowledge no method sees while unlearning; --cost untouched)
COSTS = ("retain", "untouched")
# the metric the cost is read in (--cost-metric): MC accuracy by default; ROUGE-L reads what a model still says
# about the people it keeps, which MC likelihood does not see (docs/frontier_evidence.md, "Generation cost")
METRIC_LABEL = {"mc_acc": "MC", "rougeL": "ROUGE-L", "cloze_acc": "cloze"}
TIMING_FILE = "sweep_time.json"  # every sweep invocation that ran something: wall time, runs, command
# the strength knob of every method a sweep ran with --knob ({method: override key}): the report reads a method's
# default strength at that key, also under --report-only (a method of your own has no entry in GRIDS)
KNOBS_FILE = "knobs.json"
METHODS = ("ga", "grad_diff", "kl", "npo", "manu", "mmunlearner")  # the built-in ones, in the order tables list them
# method -> (override key of its strength knob, values weakest first). lr for the gradient baselines (5
# epochs, the default), alpha (percent of neurons) for MANU, epochs of masked ascent for MMUnlearner.
_FULL: dict[str, tuple[str, tuple]] = {
    # GA and NPO from 2e-5, KL from 5e-5: on the embedded model their retain ROUGE-L drop reaches 0.05 at about
    # 5e-5 and 1e-4, so the grid brackets where the defaults' rule reads them
    "ga": ("method.optimizer.lr", (2e-5, 5e-5, 1e-4, 2e-4, 5e-4)),
    "grad_diff": ("method.optimizer.lr", (1e-4, 2e-4, 5e-4, 1e-3, 2e-3)),
    "kl": ("method.optimizer.lr", (5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3)),
    "npo": ("method.optimizer.lr", (2e-5, 5e-5, 1e-4, 2e-4, 5e-4)),
    # MANU and MMUnlearner reach far: on the embedded model alpha 30 costs 0.016 of retain MC and 5 epochs of
    # MMUnlearner none, so without the strong end their reading at the budget is only a bound
    "manu": ("manu.alpha", (1, 2, 5, 10, 20, 30, 40, 50, 70)),
    "mmunlearner": ("mmunlearner.epochs", (1, 2, 3, 5, 8, 12)),
}
GRIDS: dict[str, dict[str, tuple[str, tuple]]] = {
    "full": _FULL,
    # full, reaching lower lrs: on the pretrained organism (experiment=organism) GA and NPO at lr 5e-5
    # already cost 0.25 of retain MC, so the full grid has no point under the 0.05 budget for them
    "wide": {
        **_FULL,
        "ga": ("method.optimizer.lr", (1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4)),
        "grad_diff": ("method.optimizer.lr", (5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3)),
        "kl": ("method.optimizer.lr", (5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3)),
        "npo": ("method.optimizer.lr", (1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4)),
    },
    "fast": {  # for the end-to-end test with debug=fast: two strengths of one gradient method and MANU
        "ga": ("method.optimizer.lr", (1e-4, 1e-3)),
        "manu": ("manu.alpha", (5, 30)),
    },
}


# ------------------------------------------------------------------------------------------ the math


@dataclass(frozen=True)
class Reading:
    """Forget drop read at the budget; `reached` False: the curve never cost the budget (value = strongest)."""

    value: float
    reached: bool


def forget_drop_at(curve: Sequence[tuple[float, float]], budget: float = BUDGET) -> Reading:
    """Forget drop at retain drop `budget` along `curve` [(retain drop, forget drop)] in strength order.

    The origin (0, 0) is prepended; the first segment that reaches the budget is interpolated (module doc).
    """
    if not curve:
        raise ValueError("forget_drop_at: empty curve (no strengths were run)")
    if budget <= 0:
        raise ValueError(f"forget_drop_at: budget must be positive, got {budget}")
    points = [(0.0, 0.0), *((float(x), float(y)) for x, y in curve)]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 < budget - TOLERANCE and x1 >= budget - TOLERANCE:
            t = min(1.0, (budget - x0) / (x1 - x0))  # a cost a rounding short of the budget reads its own drop
            return Reading(y0 + (y1 - y0) * t, True)
    return Reading(points[-1][1], False)


def strength_at(curve: Sequence[tuple[float, float]], budget: float = BUDGET) -> tuple[float, str]:
    """The strength at which a cost first reaches `budget`, along `curve` [(strength > 0, cost)] in strength order.

    Interpolated in log strength between the two swept strengths around the first crossing (lrs and alphas are
    swept on a log grid). Returns (strength, "inside"); (weakest strength, "below") when the weakest swept
    strength already costs the budget; (strongest strength, "above") when no swept strength reaches it.
    """
    if not curve:
        raise ValueError("strength_at: empty curve (no strengths were run)")
    if any(s <= 0 for s, _ in curve):
        raise ValueError(f"strength_at: strengths must be positive (log scale), got {[s for s, _ in curve]}")
    if curve[0][1] >= budget - TOLERANCE:
        return float(curve[0][0]), "below"
    for (s0, c0), (s1, c1) in zip(curve, curve[1:]):
        if c0 < budget - TOLERANCE and c1 >= budget - TOLERANCE:
            t = min(1.0, (budget - c0) / (c1 - c0))
            return math.exp(math.log(s0) + t * (math.log(s1) - math.log(s0))), "inside"
    return float(curve[-1][0]), "above"


def nearest_125(x: float) -> float:
    """The value of the 1-2-5 series (..., 1e-4, 2e-4, 5e-4, 1e-3, ...) nearest `x` on a log scale."""
    if x <= 0:
        raise ValueError(f"nearest_125: needs a positive value, got {x}")
    k = math.floor(math.log10(x))
    candidates = [m * 10.0 ** e for e in (k - 1, k, k + 1) for m in (1, 2, 5)]
    return float(f"{min(candidates, key=lambda c: abs(math.log(c / x))):.6g}")


def across_seeds(readings: Sequence[Reading]) -> tuple[float, float | None, int]:
    """(mean, sample std, number of seeds that did not reach the budget)."""
    mean, std = mean_std([r.value for r in readings])
    return mean, std, sum(not r.reached for r in readings)


def seeds_reading(by_seed: dict[int, list[tuple[float, float, float]]],
                  budget: float = BUDGET) -> tuple[float, float | None, int]:
    """The table's reading of one method's curves {seed: [(strength, cost drop, forget drop)]}: each seed's
    curve read at the budget, then averaged (across_seeds); the plot marks it beside the curve of the means."""
    return across_seeds([forget_drop_at([(r, f) for _, r, f in c], budget) for c in by_seed.values()])


# ------------------------------------------------------------------------------------------ the sweep


def knob_name(method: str, points: Sequence["Point"] = ()) -> str:
    """The strength knob's last key ("lr", "alpha", "epochs"): how runs and tables name a strength. Read from
    the method's runs where given (their directories name it: a --knob of your own), else the full grid's."""
    named = {p.knob for p in points if p.method == method and p.knob}
    if len(named) == 1:
        return named.pop()
    return GRIDS["full"][method][0].rsplit(".", 1)[-1] if method in GRIDS["full"] else "strength"


def parse_knob(spec: str) -> tuple[str, str, tuple]:
    """`--knob METHOD=KEY:V1,V2,...` -> (method, override key, strengths in increasing order).

    Why: a method of your own (docs/guide/adding_a_method.md), or a built-in one along another knob, goes on the
    frontier beside the others without editing GRIDS. The curve is read in increasing value of the knob, so the
    knob must grow with the method's strength (an lr, epochs, a percent pruned; not a retain weight)."""
    method, _, rest = spec.partition("=")
    key, _, listed = rest.partition(":")
    hint = "expected METHOD=KEY:V1,V2,... (e.g. simnpo=simnpo.optimizer.lr:1e-5,2e-5,5e-5)"
    if not (method and key and listed):
        raise ValueError(f"--knob {spec!r}: {hint}")
    # METHOD is a config of the method group (its file's name) and a directory; KEY a config key, set as given
    if not re.fullmatch(r"\w[\w-]*", method):
        raise ValueError(f"--knob {spec!r}: method {method!r}: a config name of letters, digits, _ and -; {hint}")
    if not re.fullmatch(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*", key):  # a method's section may be named with a -
        raise ValueError(f"--knob {spec!r}: key {key!r}: a dotted config key (no + or =: the key must be one the "
                         f"method's config sets); {hint}")
    values = []
    for v in listed.split(","):
        try:
            x = float(v)
        except ValueError:
            raise ValueError(f"--knob {spec!r}: {v!r} is not a number; {hint}") from None
        if not math.isfinite(x) or x <= 0:
            raise ValueError(f"--knob {spec!r}: {v!r}: a strength is a finite number > 0 (0 is the vanilla model, "
                             "the origin every curve starts from)")
        # a whole number as an int: its run directory is alpha=5 whether given as 5 or 5.0 (a 5.0 made a second
        # directory beside a finished alpha=5 until 2026-12-05)
        values.append(int(x) if x == int(x) else x)
    if len(set(values)) != len(values):
        raise ValueError(f"--knob {spec!r}: a strength given twice")
    return method, key, tuple(sorted(values))


def grid_with(grid: str, knobs: Sequence[str] = ()) -> dict[str, tuple[str, tuple]]:
    """GRIDS[grid] with each `--knob` added, or in place of the grid's entry for that method."""
    out = dict(GRIDS[grid])
    for spec in knobs:
        method, key, values = parse_knob(spec)
        out[method] = (key, values)
    return out


def recorded_knobs(out: Path) -> dict[str, str]:
    """{method: knob key} of the runs in `out`: knobs.json's, and for a built-in method with runs that it lacks (a
    sweep made before the file), the full grid's key, the only knob such a sweep could run it along."""
    f = out / KNOBS_FILE
    recorded = json.loads(f.read_text()) if f.is_file() else {}
    for method, (key, _) in GRIDS["full"].items():
        if method not in recorded and any((out / method).glob("*=*/seed*/metrics.json")):
            recorded[method] = key
    return recorded


def checked_knob_keys(out: Path, points: Sequence["Point"], knobs: Sequence[str] = ()) -> dict[str, str]:
    """knob_keys, refused where a --knob names another key than the sweep recorded for that method, or than its
    runs' directories name (a report reading a default at another key than the runs were swept along)."""
    recorded = recorded_knobs(out)
    for method, key, _ in map(parse_knob, knobs):
        if recorded.get(method, key) != key:
            raise ValueError(f"--knob {method}={key}: {out / KNOBS_FILE} records {method}'s runs along "
                             f"{recorded[method]}; give that knob, or none (the recorded one is read)")
    keys = knob_keys(out, knobs)
    for method in sorted({p.method for p in points} & set(keys)):
        if keys[method].rsplit(".", 1)[-1] != knob_name(method, points):
            raise ValueError(f"{out / method}: its runs are along {knob_name(method, points)}, and its knob is "
                             f"{keys[method]}: give the knob its runs were made along")
    return keys


def knob_keys(out: Path, knobs: Sequence[str] = ()) -> dict[str, str]:
    """{method: its strength knob's override key}: the full grid's, then those `out` records, then `knobs`'."""
    return {**{m: key for m, (key, _) in GRIDS["full"].items()}, **recorded_knobs(out),
            **{m: key for m, key, _ in map(parse_knob, knobs)}}


def check_knob_keys(grid: dict[str, tuple[str, tuple]], methods: Sequence[str], base: Sequence[str]) -> None:
    """Each method's knob is a key its config sets (refused before anything is recorded or run; until 2026-12-05
    a misspelt --knob key failed at its first run's override, and a knob its method never reads drew a flat curve)."""
    from omegaconf import OmegaConf

    from unlearn.config import compose_config

    for method in methods:
        key = grid[method][0]
        cfg = compose_config([f"method={method}", *base], ".", ".")
        if OmegaConf.select(cfg, key, default=None) is None:
            raise ValueError(f"--knob {method}={key}: method={method}'s config (with --base) sets no {key}; the knob "
                             "must be a key the method reads, set in its config")


def record_knobs(out: Path, grid: dict[str, tuple[str, tuple]], methods: Sequence[str]) -> None:
    """Record the knob of each method this sweep runs; refused where `out` holds its finished runs along another
    knob (one curve through lr and epochs points would read as one strength axis). A method recorded without any
    finished run (a sweep stopped or refused before it) takes the new knob."""
    recorded = recorded_knobs(out)
    written = dict(recorded)
    for method in methods:
        key = grid[method][0]
        # from its finished runs: a run that failed to start leaves a directory (its overrides.json) and no point
        along = {f.parent.parent.name.split("=", 1)[0] for f in (out / method).glob("*=*/seed*/metrics.json")}
        others = sorted(along - {key.rsplit(".", 1)[-1]})
        if others or (along and recorded.get(method, key) != key):
            raise ValueError(f"--out {out} holds runs of {method} along {recorded.get(method) or others[0]}, and this "
                             f"sweep's knob is {key}: sweep into another --out")
        written[method] = key
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / KNOBS_FILE, lambda fh: fh.write(json.dumps(written, indent=1, sort_keys=True).encode()))


def run_dir(out: Path, method: str, knob: str, value, seed: int) -> Path:
    return out / method / f"{knob.rsplit('.', 1)[-1]}={value}" / f"seed{seed}"


@dataclass(frozen=True)
class Task:
    """One (method, strength, seed) run; `before`: it also evaluates the seed's vanilla model."""

    method: str
    knob: str
    value: float
    seed: int
    before: bool


def plan(out: Path, grid: str, seeds: Sequence[int], methods: Sequence[str] | None = None,
         knobs: Sequence[str] = ()) -> list[Task]:
    """The unfinished runs, each seed's vanilla-evaluating run first (a finished run dir is skipped);
    `methods`: only these (default: every method of the grid, and those `knobs` add)."""
    swept = grid_with(grid, knobs)
    unknown = sorted(set(methods or ()) - set(swept))
    if unknown:
        raise ValueError(f"--methods {' '.join(unknown)}: not in grid {grid!r} ({', '.join(swept)}); a method of "
                         "your own needs --knob METHOD=KEY:V1,V2,...")
    tasks = []
    for seed in seeds:
        needs_before = not _has_before(out, seed)
        for method, (knob, values) in swept.items():
            if methods and method not in methods:
                continue
            for value in values:
                if (run_dir(out, method, knob, value, seed) / "metrics.json").is_file():
                    continue
                tasks.append(Task(method, knob, value, seed, needs_before))
                needs_before = False
    return tasks


def task_overrides(task: Task) -> list[str]:
    """What a run of the sweep sets itself; `--base` follows these in its overrides.json."""
    return [f"method={task.method}", f"{task.knob}={task.value}", f"seed={task.seed}", "logger=none",
            "save_model=false", f"eval.before={'true' if task.before else 'false'}"]


# what the frontier sets in each run, besides the swept strength, and names its directory by
RUN_KEYS = ("method", "seed", "teach_seed")


def check_base_keys(base: Sequence[str], swept: dict[str, tuple[str, tuple]], methods: Sequence[str]) -> None:
    """A --base that sets what the frontier sets in each run (the method, the seed, a swept knob) is refused
    before any run: a --base wins over the run's own overrides, so until 2026-12-05 `--base seed=5` ran every
    seed's runs on seed 5 (one run read as two seeds) and `--base method=npo` filled ga's curve with NPO."""
    keys = {o.split("=", 1)[0].lstrip("+~"): o for o in base}
    taken = {k: o for k, o in keys.items() if k in RUN_KEYS or k in {swept[m][0] for m in methods if m in swept}}
    if taken:
        raise ValueError(f"--base {' '.join(taken.values())}: the frontier sets {sorted(taken)} in each run (the "
                         "method, its seed, which teach_seed follows, and the swept strength name the run's "
                         "directory); sweep other methods or seeds with --methods and --seeds, other strengths with "
                         "--knob")


def unread_base(base: Sequence[str], methods: Sequence[str]) -> dict[str, dict[str, str]]:
    """{method: {key: why}} for each --base key a method's run never reads (unlearn.settings.unread_settings, which
    train.py warns of; the frontier's runs are composed without Hydra's command line, so they warned of nothing).
    Why: `--base data.forget_modality=text` swept MANU and MMUnlearner at their defaults, and the page drew their
    curves as text-trained ones."""
    from unlearn.config import compose_config
    from unlearn.settings import unread_settings

    keys = {o.split("=", 1)[0].lstrip("+~") for o in base}
    out = {}
    for method in methods if keys else ():
        unread = unread_settings(compose_config([f"method={method}", *base], ".", "."))
        if found := {k: unread[k] for k in sorted(keys & unread.keys())}:
            out[method] = found
    return out


def unread_base_note(base: Sequence[str], methods: Sequence[str]) -> str | None:
    """A sentence naming the methods that read a --base key nowhere (unread_base), for the log and the pages."""
    said = [f"{method} never reads {', '.join(f'{k} ({why})' for k, why in found.items())}"
            for method, found in unread_base(base, methods).items()]
    return (f"--base {' '.join(base)}: " + "; ".join(said) + ": their curves are the methods without it"
            if said else None)


def check_same_base(out: Path, base: Sequence[str]) -> None:
    """A resumed sweep adds runs only beside runs made with the same `--base`: the report reads every run in
    `out` as one sweep, and a new run takes its seed's before-evaluation from any finished run of that seed, so
    a run of another base (another vanilla model, e.g. `experiment=organism`) would be mixed in silently (until
    the thirty-first session it was)."""
    for made, run in bases_of_runs(out).items():
        if list(made) != list(base):
            raise ValueError(f"--out {out} holds {run} made with --base {list(made)}, and this sweep's --base is "
                             f"{list(base)}: sweep into another --out, or give the same --base")


def bases_of_runs(out: Path) -> dict[tuple, Path]:
    """{a `--base` the runs in `out` were made with: the first run made with it}, read from their overrides.json."""
    fixed = len(task_overrides(Task("m", "k", 0, 0, False)))
    made: dict[tuple, Path] = {}
    for f in sorted(out.glob("*/*=*/seed*/overrides.json")):
        made.setdefault(tuple(json.loads(f.read_text())[fixed:]), f.parent)
    return made


def runs_base(out: Path) -> list[str] | None:
    """The `--base` the runs in `out` were made with (None where there is none yet); ValueError where they differ."""
    made = bases_of_runs(out)
    if len(made) > 1:
        (one, a), (two, b) = list(made.items())[:2]
        raise ValueError(f"--out {out} mixes runs of two --base: {a} made with {list(one)}, {b} with {list(two)}; "
                         "a report reads every run as one sweep: report each base's runs from their own --out")
    return list(next(iter(made))) if made else None


def check_same_models(out: Path, tasks: Sequence[Task], base: Sequence[str], cache: Path) -> None:
    """A resumed sweep's new runs of a seed that has its before-evaluation borrow it (Task.before false), so they
    must start from the model its runs started from: the same vanilla key (the directory's name; a copied cache
    keeps it) and, where the cache holds that model, the same teaching record. Refused before anything runs;
    until 2026-12-05 a cache that taught anew (another key, or the model deleted and taught again) ran the whole
    sweep and was refused only by the report (load_points)."""
    from unlearn.config import compose_config
    from unlearn.pipeline import teaching_record, vanilla_path
    from unlearn.runtime import torch_threads

    for seed in sorted({t.seed for t in tasks if not t.before}):
        made = next((m for f in sorted(out.glob(f"*/*=*/seed{seed}/metrics.json"))
                     if _befores((m := json.loads(f.read_text())).get("metrics", {}))), None)
        if made is None:
            continue
        # the vanilla key reads no method setting: any method's config at this seed and --base names it; one the
        # sweep runs, whose keys --base may set (until 2026-12-05 method=ga: `--base manu.score=random` failed)
        method = next(t.method for t in tasks if t.seed == seed)
        cfg = compose_config([f"method={method}", "logger=none", f"seed={seed}", *base], out / ".check", cache)
        if cfg.model.path:
            continue  # a given checkpoint: nothing the cache decides
        with torch_threads(1):  # the workers' key
            path = vanilla_path(cfg)
        source, record = made.get("source_model"), made.get("source_teaching")
        now = teaching_record(path) if path.exists() else None
        if Path(str(source)).name != path.name or (record is not None and now and now != record):
            raise ValueError(f"--out {out}: the runs of seed {seed} started from {source}, and --cache {cache} "
                             f"gives {path}{' (taught again since)' if Path(str(source)).name == path.name else ''}: "
                             "their before-evaluation would not be this model's; sweep into another --out, or "
                             "give the cache those runs used")


def check_one_process(base: Sequence[str], cache: Path, out: Path, method: str = "ga") -> None:
    """The sweep's runs are each one process. Lightning starts a multi-process trainer's other ranks by running
    this process's command again: here the whole sweep, in each rank (until 2026-12-05 not refused). `method`:
    one the sweep runs, whose keys --base may set (`--methods manu --base manu.score=random`)."""
    from unlearn.config import compose_config
    from unlearn.pipeline import teaching_processes

    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:  # the sweep's first composition: a misspelt --base is named here, as train.py names it
        cfg = compose_config([f"method={method}", "logger=none", *base], out / ".check", cache)
    except (HydraException, OmegaConfBaseException) as e:
        raise ValueError(f"--base {' '.join(base)}: {e}") from e
    if teaching_processes(cfg) > 1:
        raise ValueError(f"--base {' '.join(base)}: trainer.devices x trainer.num_nodes = "
                         f"{teaching_processes(cfg)} processes; the frontier runs each run in one process (Lightning "
                         "would start the other ranks by running the whole sweep again): sweep with one device, or "
                         "run the multi-process runs one by one with python train.py")


def clear_interrupted(d: Path) -> None:
    """A sweep's run killed before its metrics is run again from the start: its checkpoints and masks (which a run
    into a directory refuses to write over, unlearn/run_dir.py) are the sweep's own, and are removed; so is a
    model/ written before the kill (`--base save_model=true`; metrics.json comes after it): until 2026-12-07 the
    run into that directory was refused, and every rerun of the sweep stopped at that point."""
    from unlearn.run_dir import INTERRUPTED

    if not d.is_dir() or (d / "metrics.json").is_file():
        return
    for p in sorted({p for pattern in INTERRUPTED for p in d.glob(pattern) if p.is_file()}):
        log.info("%s: removing the interrupted run's %s (the run starts again)", d, p.relative_to(d))
        p.unlink()
    if (d / "model").is_dir():
        log.info("%s: removing the interrupted run's model/ (the run starts again)", d)
        shutil.rmtree(d / "model")


def run_task(task: Task, out: Path, base: Sequence[str], cache: Path) -> float:
    """Run one task in this process; returns its wall time."""
    from unlearn.config import compose_config
    from unlearn.pipeline import run

    d = run_dir(out, task.method, task.knob, task.value, task.seed)
    overrides = [*task_overrides(task), *base]
    clear_interrupted(d)
    start = time.perf_counter()
    # first: a run killed before its metrics.json still says which --base it was (check_same_base)
    write_atomic(d / "overrides.json", lambda f: f.write(json.dumps(overrides).encode()))
    run(compose_config(overrides, d, cache))
    took = time.perf_counter() - start
    log.info("%s %s=%s seed %d: %.1f s", task.method, task.knob, task.value, task.seed, took)
    return took


def _one_thread_worker() -> None:
    """Worker start-up: one torch thread each, so `jobs` workers share the cores without oversubscribing."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from unlearn.runtime import quiet_libraries

    quiet_libraries()
    _stop_with_parent(os.getppid())
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # until its run (_run_in_worker)


def _stop_with_parent(parent: int, every_s: float = 1.0, grace_s: float = 30.0) -> None:
    """A worker whose sweep process is gone (SIGKILL, an OOM kill, a scheduler's kill -9 after its SIGTERM) sends
    itself SIGTERM, so its run stops through its cleanups, and exits `grace_s` later (the pool's worker loop
    catches the run's SIGTERMException as a task's result and would wait for the next task for ever). Why: until
    2026-12-07 a `kill -9` of a `--jobs 2` sweep left its two workers (and multiprocessing's resource tracker)
    running as orphans, unseen, finishing a point nobody reads, then waiting on a queue nobody writes to."""
    import signal
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace_s)
        os._exit(128 + signal.SIGTERM)

    threading.Thread(target=watch, name="stop-with-parent", daemon=True).start()


def worker_pool(jobs: int, out: Path, base: Sequence[str], cache: Path, method: str):
    """`jobs` spawned single-thread worker processes, after generating the data every run reads here, so the
    workers do not race to generate it. `method`: one the sweep runs, composed with `base`, whose overrides
    may set that method's keys (`--methods mmunlearner --base mmunlearner.gamma=2`)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from hydra.utils import instantiate

    from unlearn.config import compose_config

    instantiate(compose_config([f"method={method}", *base], out, cache).data.benchmark)
    return ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread_worker)


def sweep(out: Path, grid: str, seeds: Sequence[int], base: Sequence[str], cache: Path, jobs: int = 1,
          methods: Sequence[str] | None = None, knobs: Sequence[str] = ()) -> int:
    """Every unfinished (method, strength, seed) run (resumable), in this process or in `jobs` workers.

    Workers: each seed's first run (it teaches the seed's vanilla model when it is not cached, and evaluates
    it) goes first; the seed's other runs are queued once it has finished, so no two workers teach the same
    model. One thread per worker, so `jobs` = the number of cores keeps every core busy without
    oversubscribing it; one thread in this process too with `jobs` 1, so the runs are the workers'. Returns
    the number of runs made.
    """
    swept = grid_with(grid, knobs)
    check_base_keys(base, swept, methods or list(swept))
    check_same_base(out, base)
    tasks = plan(out, grid, seeds, methods, knobs)
    check_one_process(base, cache, out, tasks[0].method if tasks else "ga")
    check_same_models(out, tasks, base, cache)
    given = {parse_knob(k)[0] for k in knobs}
    # the knobs of the runs to make, and every --knob (a knob given for runs all finished is read by the report)
    check_knob_keys(swept, sorted({t.method for t in tasks} | {m for m in given if not methods or m in methods}), base)
    if tasks:  # once the checks pass, before the first run
        record_knobs(out, swept, sorted({t.method for t in tasks}))
        if note := unread_base_note(base, sorted({t.method for t in tasks})):
            log.warning("%s (leave them out with --methods)", note)
    if jobs <= 1 or not tasks:
        from unlearn.runtime import torch_threads

        # as in the workers: a model taught on two threads differs from one taught on one, so without this
        # --jobs 1 and --jobs 2 would make two different sweeps of one command
        with torch_threads(1):
            for task in tasks:
                try:
                    run_task(task, out, base, cache)
                except Exception as e:  # a run's failure, not a refusal of the sweep's input: its traceback is
                    raise RuntimeError(f"frontier run {task} failed") from e  # kept (runtime.refusals_as_messages)
                except BaseException:  # Ctrl-C, SIGTERM: Lightning's exit, or runtime's
                    log.warning(interrupted_note(out, task))
                    raise
        return len(tasks)
    from concurrent.futures import FIRST_COMPLETED, wait

    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from unlearn.runtime import CTRL_C_STATUS, SIGTERM_STATUS

    firsts: dict[int, Task] = {}
    for t in tasks:
        firsts.setdefault(t.seed, t)
    # at most `jobs` runs handed to the pool at a time: the pool queues one more than its workers, which a worker
    # would start after a Ctrl-C or SIGTERM stopped the others (the order of the runs is the same)
    queued = list(firsts.values())
    started: list[Task] = []
    with worker_pool(jobs, out, base, cache, tasks[0].method) as pool, _sigterm_raises():
        pending: dict = {}
        try:
            while queued or pending:
                while queued and len(pending) < jobs:
                    started.append(queued.pop(0))
                    pending[pool.submit(_run_in_worker, started[-1], out, base, cache)] = started[-1]
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    task = pending.pop(fut)
                    if fut.exception() is not None:  # stop the sweep; finished runs stay (resumable)
                        pool.shutdown(wait=False, cancel_futures=True)
                        raise RuntimeError(f"frontier run {task} failed") from fut.exception()
                    if firsts.get(task.seed) is task:
                        queued += [t for t in tasks if t.seed == task.seed and t is not task]
        except (KeyboardInterrupt, SIGTERMException) as stop:
            _stop_workers(pool, pending, out, started, tasks,
                          "Ctrl-C" if isinstance(stop, KeyboardInterrupt) else "SIGTERM")
            if isinstance(stop, KeyboardInterrupt):
                raise SystemExit(CTRL_C_STATUS) from None
            raise SIGTERMException(SIGTERM_STATUS) from None
    return len(tasks)


@contextmanager
def _sigterm_raises():
    """SIGTERM raises SIGTERMException in the sweep's process of `--jobs` workers, without runtime's line for a run in
    this process ("what the run was writing is removed": here the workers run, and `_stop_workers` says what they
    did)."""
    import signal
    import threading

    from unlearn.runtime import sigterm_as_exit

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.getsignal(signal.SIGTERM)
    sigterm_as_exit(said=False)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _stop_workers(pool, pending, out: Path, started: Sequence[Task], tasks: Sequence[Task], how: str) -> None:
    """After a Ctrl-C or SIGTERM of a `--jobs` sweep: no new run, wait for the workers' current ones, say which
    finished, which stopped and what to do. Why: until 2026-12-07 a Ctrl-C waited, then printed a KeyboardInterrupt
    traceback of the pool's wait; a SIGTERM printed the in-process run's "what the run was writing is removed"."""
    import signal

    # a Ctrl-C from a terminal (a SIGTERM to the process group: `timeout`, a scheduler) reached the workers too and
    # stops their runs; one to this process alone lets them finish. A second Ctrl-C would leave them unwaited.
    before = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    log.warning("frontier sweep interrupted (%s): no new run; waiting for the workers' runs to stop or finish", how)
    try:
        import multiprocessing
        from concurrent.futures import wait

        wait(pending)  # each worker's run stopped or finished (or the pool broke: a worker SIGTERM found between runs)
        # then the workers, idle, end at once (SIGTERM between runs: _run_in_worker). Why: a worker that SIGTERM
        # ended between its runs breaks the pool, whose manager then SIGTERMs the others and joins them; one whose
        # fit took that SIGTERM as Lightning's stop lived on idle, and the sweep waited for it for ever (2026-12-07,
        # `kill -TERM -PGID` of a --jobs 2 sweep)
        for worker in multiprocessing.active_children():
            worker.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
    finished = [t for t in started if (run_dir(out, t.method, t.knob, t.value, t.seed) / "metrics.json").is_file()]
    stopped = [t for t in started if t not in finished]
    names = lambda ts: ", ".join(str(run_dir(out, t.method, t.knob, t.value, t.seed)) for t in ts)  # noqa: E731
    log.warning(
        "frontier sweep interrupted (%s): %d of its %d runs not started%s%s. Run the same command again: it runs only "
        "the points without metrics.json%s", how, len(tasks) - len(started), len(tasks),
        f"; finished and kept: {names(finished)}" if finished else "",
        f"; stopped, to run again from the start (what it left, a checkpoint or nothing, is the sweep's own and is "
        f"removed): {names(stopped)}"
        if stopped else "", "" if finished or stopped else " (none ran)")


def _run_in_worker(task: Task, out: Path, base: Sequence[str], cache: Path) -> float:
    """A worker's run: Ctrl-C and SIGTERM stop it as they stop a run in the sweep's process (Lightning's graceful stop
    in a fit, runtime's handlers outside one: what it was writing is removed). Between runs a worker ignores Ctrl-C (a
    terminal sends it to every process of the sweep; an idle worker printed a KeyboardInterrupt traceback of the
    pool's queue) and SIGTERM ends it at once, as before (the pool's SIGTERM of a broken pool's workers)."""
    import signal

    from unlearn.runtime import ctrl_c_ignored, sigterm_as_exit

    signal.signal(signal.SIGINT, signal.SIG_IGN if ctrl_c_ignored() else signal.default_int_handler)
    sigterm_as_exit()
    try:
        return run_task(task, out, base, cache)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def interrupted_note(out: Path, task: Task) -> str:
    """What to do after a sweep is interrupted. Why: the run's own notice says to resume from its checkpoint with
    method.ckpt_path, which a sweep does not do (its rerun removes that checkpoint and runs the point again, on the
    sweep's one thread: a train.py resume of it would be another thread count's model)."""
    return (f"frontier sweep interrupted at {run_dir(out, task.method, task.knob, task.value, task.seed)}: run the "
            "same command again; it runs only the points without metrics.json, this one from its start (what it "
            "left, a checkpoint or nothing, is the sweep's own and is removed)")


def _has_before(out: Path, seed: int) -> bool:
    return any(_befores(json.loads(f.read_text())["metrics"]) for f in out.glob(f"*/*=*/seed{seed}/metrics.json"))


def _befores(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k.startswith("before/")}


@dataclass
class Point:
    method: str
    strength: float
    seed: int
    metrics: dict
    path: Path | None = None  # the run's directory (load_points), for its method's own artifacts
    source: str | None = None  # the vanilla model it started from (metrics.json "source_model")
    teach_seed: int | None = None  # which teaching made that model (metrics.json "teach_seed"; None: its seed)
    teaching: str | None = None  # a hash of that model's teaching record (metrics.json "source_teaching")
    knob: str | None = None  # the strength knob's last key, as its directory names it ("lr" of lr=5e-05)
    code: str | None = None  # the commit that made the run (report.code_label)
    code_key: str | None = None  # what tells its code from another run's (report.code_key)
    given_model: bool = False  # it unlearned a checkpoint given as model.path, every seed's (report.given_checkpoint)

    def drop(self, split: str, mod: str, name: str = "mc_acc") -> float | None:
        """before - after of metric `name` on one split and modality (None where the run lacks it)."""
        b = metric(self.metrics, f"before/{split}/{mod}/{name}")
        a = metric(self.metrics, f"after/{split}/{mod}/{name}")
        return None if a is None or b is None else b - a


def measured(points: Sequence[Point], split: str, name: str = "mc_acc") -> bool:
    """Whether any run has a before and after value of metric `name` on `split` (an older sweep may lack one)."""
    return any(p.drop(split, mod, name) is not None for p in points for mod in MODALITIES)


def load_points(out: Path) -> list[Point]:
    """Every finished run under `out` (layout in the module doc); ValueError naming a malformed file."""
    points = []
    for mfile in sorted(out.glob("*/*=*/seed*/metrics.json")):
        try:
            summary = json.loads(mfile.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{mfile}: malformed JSON ({e})") from e
        seed_dir, strength_dir, method_dir = mfile.parent, mfile.parent.parent, mfile.parent.parent.parent
        try:
            strength, seed = float(strength_dir.name.split("=", 1)[1]), int(seed_dir.name.removeprefix("seed"))
            metrics = summary["metrics"]
        except (ValueError, IndexError, KeyError, TypeError) as e:
            raise ValueError(f"{mfile}: not a sweep run (expected <method>/<knob>=<strength>/seed<N>/metrics.json "
                             f"holding a 'metrics' object; {type(e).__name__}: {e})") from e
        if summary.get("seed") not in (None, seed):  # a run whose directory says another seed than it ran
            raise ValueError(f"{mfile}: ran seed {summary['seed']}, and its directory says {seed_dir.name}")
        teach, record = summary.get("teach_seed"), summary.get("source_teaching")
        points.append(Point(method_dir.name, strength, seed, metrics, seed_dir, summary.get("source_model"),
                            None if teach is None else int(teach), None if record is None else config_hash(record),
                            strength_dir.name.split("=", 1)[0], code_label(summary), code_key(summary),
                            given_checkpoint(recorded_config(seed_dir))))
    for method in sorted({p.method for p in points}):  # one curve reads one knob (record_knobs refuses a second)
        named = sorted({p.knob for p in points if p.method == method})
        if len(named) > 1:
            raise ValueError(f"{out / method}: runs along {' and '.join(named)}; a curve is read along one knob: "
                             "move one knob's runs into another --out")
    seen: dict[tuple, Path | None] = {}
    for p in points:  # alpha=5 and alpha=5.0 are one strength: one seed's run twice would count as two seeds
        if (p.method, p.strength, p.seed) in seen:
            raise ValueError(f"{p.path} and {seen[(p.method, p.strength, p.seed)]}: two runs of {p.method} at "
                             f"strength {p.strength:g}, seed {p.seed}; keep one")
        seen[(p.method, p.strength, p.seed)] = p.path
    # Runs of one seed start from one vanilla model, so one run's before/* stand for all (the sweep
    # evaluates it once per seed: evaluation is about half of a run's time on the embedded model). Only runs
    # from the same vanilla model lend them: a resumed sweep whose cache taught another model (a changed key,
    # another --cache) has no before-evaluation of its own, and is refused rather than read against the old one
    # (a model taught again under the same key and path has another teaching record: until 2026-12-05 its runs
    # borrowed the old model's before-evaluation)
    vanilla: dict[tuple, dict] = {}
    for p in points:
        if _befores(p.metrics):
            vanilla.setdefault(_vanilla_of(p), _befores(p.metrics))
    for p in points:
        if _befores(p.metrics):
            continue
        if _vanilla_of(p) in vanilla:
            p.metrics = {**vanilla[_vanilla_of(p)], **p.metrics}
        elif any(seed == p.seed for seed, _, _ in vanilla):
            others = sorted(f"{s} (teaching {t})" for seed, s, t in vanilla if seed == p.seed)
            raise ValueError(f"{p.path}: started from {p.source} (teaching {p.teaching}), and the before-evaluations "
                             f"of seed {p.seed} in {out} are of {', '.join(others)}: rerun one run of that model "
                             "with eval.before=true, or sweep it into another --out")
    return points


def unfinished_runs(out: Path) -> dict[tuple[str, float, int], Path]:
    """{(method, strength, seed): directory} of the runs under `out` that began and left no metrics.json (failed,
    or unfinished). Why: load_points reads finished runs only, so a strength that failed on every seed (an lr
    whose updates overflow) vanished, and the method read as never reaching the budget (until 2026-12-06)."""
    found = {}
    for seed_dir in sorted(out.glob("*/*=*/seed*")):
        try:
            strength, seed = float(seed_dir.parent.name.split("=", 1)[1]), int(seed_dir.name.removeprefix("seed"))
        except (ValueError, IndexError):
            continue  # not a sweep run's directory (load_points names a malformed finished one)
        if seed_dir.is_dir() and not (seed_dir / "metrics.json").is_file():
            found[(seed_dir.parent.parent.name, strength, seed)] = seed_dir
    return found


def unfinished_note(unfinished: Collection[tuple[str, float, int]]) -> str | None:
    """The runs without metrics.json, by method and strength, as a page says them; None without any."""
    if not unfinished:
        return None
    seeds: dict[tuple[str, float], list[int]] = {}
    for method, strength, seed in sorted(unfinished):
        seeds.setdefault((method, strength), []).append(seed)
    runs = "; ".join(f"{m} {s:g} (seed {', '.join(map(str, ss))})" for (m, s), ss in seeds.items())
    return (f"runs that left no metrics.json (failed, or unfinished: their directories' run.log says which): {runs}; "
            "the curves lack those points (‡), so a method whose strongest settings failed reads as weaker than it "
            "may be")


def _vanilla_of(p: Point) -> tuple:
    """Which vanilla model a run started from: its seed, the model's key (its directory's name: a sweep copied
    with its cache elsewhere keeps it) and its teaching record."""
    return vanilla_model(p.seed, p.source, p.teaching)


def curves(points: Sequence[Point], mod: str, cost: str = "retain",
           cost_metric: str = "mc_acc") -> dict[str, dict[int, list[tuple[float, float, float]]]]:
    """{method: {seed: [(strength, cost drop, forget drop)] by strength}} for one modality; the cost drop is
    the `cost` split's drop in `cost_metric` (retain MC by default), the forget drop is always MC's."""
    out: dict[str, dict[int, list]] = {}
    for p in points:
        r, f = p.drop(cost, mod, cost_metric), p.drop("forget", mod)
        if r is None or f is None:
            continue
        out.setdefault(p.method, {}).setdefault(p.seed, []).append((p.strength, r, f))
    for by_seed in out.values():
        for c in by_seed.values():
            c.sort()
    return out


def with_metric(words: str, name: str) -> str:
    """`words` and the metric's label, but MC's: the pages named MC columns before other metrics were read."""
    return words if name == "mc_acc" else f"{words} {METRIC_LABEL[name]}"


def cost_axis(cost: str = "retain", cost_metric: str = "mc_acc") -> str:
    """How tables and plots name a cost axis: "retain" for retain MC (as the pages always have), "retain ROUGE-L"."""
    if cost not in COSTS:
        raise ValueError(f"--cost {cost!r}: expected one of {', '.join(COSTS)}")
    if cost_metric not in METRIC_LABEL:
        raise ValueError(f"--cost-metric {cost_metric!r}: expected one of {', '.join(METRIC_LABEL)}")
    return with_metric(cost, cost_metric)


def frontier_table(points: Sequence[Point], budget: float = BUDGET, cost: str = "retain",
                   cost_metric: str = "mc_acc", unfinished: Collection[tuple[str, float, int]] = ()) -> str:
    """Markdown: per method and modality, forget MC drop at the `cost` split's `cost_metric` drop = budget,
    mean ± std over seeds. `unfinished`: the (method, strength, seed) of runs that left no metrics.json
    (unfinished_runs); they, and runs without a before-evaluation, count as settings a seed lacks (‡)."""
    axis = cost_axis(cost, cost_metric)
    per_mod = {mod: curves(points, mod, cost, cost_metric) for mod in MODALITIES}
    # what began but cannot be read: until 2026-12-06 a seed none of whose runs had a before-evaluation, and a
    # strength no seed finished, left the sweep's seeds and strengths without a mark
    unread = set(unfinished) | {(p.method, p.strength, p.seed) for p in points if not _befores(p.metrics)}
    methods = method_order({m for c in per_mod.values() for m in c} | {m for m, _, _ in unread})
    header = ["method", "seeds"] + [f"{MOD_LABEL[mod]} forget drop @ {axis} drop {budget:g}" for mod in MODALITIES]
    lines = ["| " + " | ".join(header) + " |", "|---|---:|" + "---:|" * len(MODALITIES)]
    flagged = incomplete_seen = False
    sweep_seeds = {mod: {seed for c in per_mod[mod].values() for seed in c} | {s for _, _, s in unread}
                   for mod in MODALITIES}
    for m in methods:
        cells, n = [], 0
        for mod in MODALITIES:
            by_seed = per_mod[mod].get(m, {})
            n = max(n, len(by_seed))
            if not by_seed:
                cells.append("n/a")
                continue
            mean, std, missed = seeds_reading(by_seed, budget)
            cell = f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}"
            if missed:
                cell += f" † ({missed}/{len(by_seed)})"
                flagged = True
            lacking = incomplete_seeds(by_seed, sweep_seeds[mod], {st for m_, st, _ in unread if m_ == m})
            if lacking:
                cell += f" ‡ ({lacking}/{len(sweep_seeds[mod])})"
                incomplete_seen = True
            cells.append(cell)
        lines.append(f"| {m} | {n} | " + " | ".join(cells) + " |")
    label = f"{cost} {METRIC_LABEL[cost_metric]}"
    notes = [f"forget MC drop (before - after) interpolated at {label} drop {budget:g} along each method's "
             "strength curve (first crossing from the vanilla origin), mean ± sample std over seeds."]
    if flagged:
        notes.append(f"† (k/n): in k of n seeds the strongest setting swept cost less than {budget:g} {label}; "
                     "those seeds count with their strongest setting's forget drop.")
    if incomplete_seen:
        notes.append("‡ (k/n): k of the n seeds of the sweep lack a setting of this method that another seed ran "
                     "(a failed or unfinished run, or one without its before-evaluation), or lack the method "
                     "altogether; their reading comes from fewer points, or is missing. Rerun them.")
    if note := unfinished_note(unfinished):
        notes.append(note[0].upper() + note[1:] + ".")
    unmoved = unmoved_methods(points)
    if unmoved:
        notes.append(f"{', '.join(unmoved)}: every strength swept ended alike on every seed (the same after-"
                     "unlearning metrics, to the digit): the knob does not reach the method, so this curve is not "
                     "its strength's (check that the method reads the swept key).")
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes)


def unmoved_methods(points: Sequence[Point]) -> list[str]:
    """Methods whose runs at two or more strengths end with the same after/* metrics on every seed: a swept key the
    method never reads (a --knob of your own that its run(ctx) ignores) draws a flat curve that reads as a method
    that does not forget."""
    after: dict[tuple[str, int], set[str]] = {}
    strengths: dict[tuple[str, int], set[float]] = {}
    for p in points:
        after.setdefault((p.method, p.seed), set()).add(
            json.dumps({k: v for k, v in p.metrics.items() if k.startswith("after/")}, sort_keys=True))
        strengths.setdefault((p.method, p.seed), set()).add(p.strength)
    out = []
    for method in method_order({m for m, _ in after}):
        seeds = [key for key in after if key[0] == method and len(strengths[key]) > 1]
        if seeds and all(len(after[key]) == 1 for key in seeds):
            out.append(method)
    return out


def paired_table(points: Sequence[Point], budget: float = BUDGET, cost: str = "retain",
                 cost_metric: str = "mc_acc") -> str | None:
    """Markdown: per modality, every pair of methods' forget drops at equal cost compared seed by seed
    (unlearn/paired.py); None where no two methods share two seeds."""
    from unlearn.paired import LEVEL, comparable, matrix, pair_counts, t_half_width

    per_mod = {mod: curves(points, mod, cost, cost_metric) for mod in MODALITIES}
    methods = method_order({m for c in per_mod.values() for m in c})
    taught = taught_models(points)

    def taught_model(key):  # readings are keyed (taught model, seed); the pairs' unit is the taught model
        return key[0]

    parts, counts = [], []
    for mod in MODALITIES:
        readings, bounds = {}, {}
        for m in (m for m in methods if m in per_mod[mod]):
            read = {seed: forget_drop_at([(r, f) for _, r, f in c], budget) for seed, c in per_mod[mod][m].items()}
            readings[m] = {(taught[seed], seed): r.value for seed, r in read.items()}
            bounds[m] = {(taught[seed], seed) for seed, r in read.items() if not r.reached}
        if comparable(readings, taught_model):
            parts.append(f"{MOD_LABEL[mod]} forget drop:\n\n" + matrix(readings, bounds, unit=taught_model))
            counts.append(pair_counts(readings, taught_model))
    if not parts:
        return None
    label = f"{cost} {METRIC_LABEL[cost_metric]}"
    # the page's own numbers: the threshold at each number of shared seeds its cells use, the pairs each matrix
    # tests (until 2026-12-05 the text said 3 seeds and 15 pairs whatever the sweep held)
    thresholds = ", ".join(f"with {n} seeds {t_half_width(1.0, n):.2f} std" for n in sorted({n for c in counts
                                                                                            for n in c}))
    tested = sorted({len(c) for c in counts})
    pairs = " or ".join(str(n) for n in tested) + f" pair{'s' * (tested != [1])} per matrix"
    return "\n\n".join(parts) + (
        f"\n\n- row − column: the row method's forget MC drop at {label} drop {budget:g} minus the column's, seed by "
        "seed (each seed's methods start from that seed's taught model, so the part of the spread that the model "
        "gives every method cancels), mean ± sample std over the seeds both ran; (k): only k seeds shared."
        + (" Seeds that share a taught model (`teach_seed`, or one `model.path`) count once, their differences "
           "averaged: they are not independent samples of it." if len(set(taught.values())) < len(taught) else "")
        + "\n"
        f"- *: the paired t interval ({LEVEL:.0%}) excludes 0, |mean| > t(n - 1) std / sqrt(n) ({thresholds}): the "
        "row forgets more (+) or less (-) than the column at that cost on these taught models. With no true "
        f"difference about 1 pair in 20 is starred by chance ({pairs}); a difference equal at every seed has no "
        "spread to test and is not starred.\n"
        "- †: a shared seed of either method reads its strongest setting (it never cost the budget there): that "
        "difference is a bound, not a reading at equal cost.")


def taught_models(points: Sequence[Point]) -> dict[int, int | str]:
    """{seed: the teach seed of the model its runs start from, or the path of a checkpoint given as model.path,
    which every seed starts from (until 2026-12-07 its seeds counted as taught models, as the report's did)};
    ValueError where one seed's runs name two."""
    out: dict[int, int | str] = {}
    for p in points:
        teach = str(p.source) if p.given_model else p.seed if p.teach_seed is None else p.teach_seed
        if out.setdefault(p.seed, teach) != teach:
            raise ValueError(f"{p.path}: seed {p.seed} started from the model of teach seed {teach}, and other runs "
                             f"of seed {p.seed} from teach seed {out[p.seed]}: a sweep's seed pairs one taught model")
    return out


def incomplete_seeds(by_seed: dict[int, list[tuple[float, float, float]]], seeds: set[int],
                     began: Collection[float] = ()) -> int:
    """How many of the sweep's `seeds` lack a strength of this method that another of its seeds ran, or that
    `began` holds (a run of it began and cannot be read), or lack the method: a failed or unfinished run leaves
    a curve with fewer points, which reads differently."""
    strengths = {s for c in by_seed.values() for s, _, _ in c} | set(began)
    return sum(1 for seed in seeds if {s for s, _, _ in by_seed.get(seed, [])} != strengths)


def _crossing(ps_by_strength: dict[float, list[Point]], budget: float, name: str) -> tuple[float, str] | None:
    """strength_at of one method's mean retain drop in metric `name` (the larger of the two modalities at each
    swept strength); None when its runs lack that metric."""
    curve = []
    for strength, ps in sorted(ps_by_strength.items()):
        drops = [mean_std(v)[0] for mod in MODALITIES
                 if (v := [d for p in ps if (d := p.drop("retain", mod, name)) is not None])]
        if drops:
            curve.append((strength, max(drops)))
    return strength_at(curve, budget) if curve else None


def _crossing_cell(crossing: tuple[float, str] | None) -> str:
    if crossing is None:
        return "n/a"
    value, where = crossing
    return {"inside": f"{value:.2g}", "below": f"<= {value:g}", "above": f"> {value:g} (never)"}[where]


# the retain costs the defaults' rule reads (the first to reach the budget sets a method's default); cloze is
# shown beside them but left out: it scores the same generated reply as ROUGE-L, by the embedded benchmark's
# stricter start-of-reply rule (docs/frontier_evidence.md, "Generation cost")
RULE_METRICS = ("mc_acc", "rougeL")


# how crossings order: "below" (already at the weakest swept strength) first, "above" (never) last
CROSSING_RANK = {"below": 0, "inside": 1, "above": 2}


def _rank(crossing: tuple[float, str]) -> tuple[int, float]:
    return CROSSING_RANK[crossing[1]], crossing[0]


def first_crossing(crossings: Sequence[tuple[float, str] | None]) -> tuple[float, str] | None:
    """The weakest of several crossings (None: a metric the runs lack): where the first of the costs reaches the
    budget. "below" (already at the weakest swept strength) comes first, "above" (never) last."""
    known = [c for c in crossings if c is not None]
    return min(known, key=_rank) if known else None


def seed_crossings(ps_by_strength: dict[float, list[Point]], budget: float,
                   names: Sequence[str] = RULE_METRICS) -> dict[int, tuple[float, str]]:
    """Each seed's own first crossing of the `names` costs (the rule of `equal_cost_table` read on that seed's
    runs alone): how far apart the taught models put a method's default. Seeds whose runs lack every metric are
    left out."""
    seeds = sorted({p.seed for ps in ps_by_strength.values() for p in ps})
    out = {}
    for seed in seeds:
        own = {s: kept for s, ps in ps_by_strength.items() if (kept := [p for p in ps if p.seed == seed])}
        if (c := first_crossing([_crossing(own, budget, n) for n in names])) is not None:
            out[seed] = c
    return out


def median_crossing(crossings: Sequence[tuple[float, str]]) -> tuple[float, str] | None:
    """The middle of several seeds' crossings, ordered "below" < "inside" (by strength) < "above". An even count
    takes the geometric mean of the two middle ones where both are inside or both the same; None where the two
    differ in kind (the middle lies outside what was swept on one side) or there are none.

    Why: one taught model far from the others (docs/seed_variance.md, "Five taught models") moves a mean curve's
    crossing; the middle model's does not move unless half of them do."""
    order = sorted(crossings, key=_rank)
    if not order:
        return None
    n = len(order)
    if n % 2:
        return order[n // 2]
    (a, ka), (b, kb) = order[n // 2 - 1], order[n // 2]
    if ka != kb:
        return None
    return (math.sqrt(a * b), ka) if ka == "inside" else (a, ka)


def equal_cost_table(points: Sequence[Point], defaults: dict[str, float], budget: float = BUDGET) -> str:
    """Markdown: per method, the strength at which its mean retain drop (the larger of the two modalities) first
    reaches `budget` in MC, ROUGE-L and cloze (those the runs measured), the 1-2-5 value nearest the earliest of
    the RULE_METRICS crossings, and the config default: the rule every method's default follows
    (configs/model/tiny_llava.yaml). Runs without ROUGE-L read MC alone."""
    by: dict[str, dict[float, list[Point]]] = {}
    for p in points:
        by.setdefault(p.method, {}).setdefault(p.strength, []).append(p)
    names = ["mc_acc"] + [n for n in METRIC_LABEL if n != "mc_acc" and measured(points, "retain", n)]
    header = [f"{with_metric('mean retain', n)} drop reaches {budget:g} at" for n in names]
    lines = ["| method | knob | " + " | ".join(header) + " | nearest 1-2-5 | each seed's crossing: median (range) | "
             "its 1-2-5 | default |", "|---|---|" + "---:|" * (len(header) + 4)]
    differ = []
    for method in method_order(by):
        crossings = {n: _crossing(by[method], budget, n) for n in names}
        if crossings["mc_acc"] is None:
            continue
        rule_names = [n for n in names if n in RULE_METRICS]
        near = _nearest_cell(first_crossing([crossings[n] for n in rule_names]))
        own = list(seed_crossings(by[method], budget, rule_names).values())
        middle = median_crossing(own)
        near_middle = _nearest_cell(middle)
        low, high = (_crossing_cell(min(own, key=_rank)), _crossing_cell(max(own, key=_rank))) if own else ("n/a",) * 2
        spread = (low if low == high else f"{_crossing_cell(middle) if middle else 'split'} ({low} to {high})")
        if near_middle != near:
            differ.append(f"{method} ({near_middle} against {near})")
        default = f"{defaults[method]:g}" if method in defaults else "n/a"
        cells = " | ".join(_crossing_cell(crossings[n]) for n in names)
        lines.append(f"| {method} | {knob_name(method, points)} | {cells} | {near} | {spread} | {near_middle} | "
                     f"{default} |")
    read = [METRIC_LABEL[n] for n in names]
    notes = [f"retain {', '.join(read)} drop: mean over seeds at each swept strength, the larger of the two "
             "modalities; interpolated in log strength between the swept strengths around the first crossing."]
    if len(names) > 1:
        rule = " and ".join(METRIC_LABEL[n] for n in names if n in RULE_METRICS)
        notes.append(f"nearest 1-2-5: of the earlier of the {rule} crossings, where the first of those costs reaches "
                     "the budget (n/a when it lies outside the swept range)"
                     + ("; cloze is shown, not read by the rule (it scores the same generated reply as ROUGE-L, "
                        "by a stricter start-of-reply rule)." if "cloze_acc" in names else "."))
    notes.append("each seed's crossing: the same rule read on each seed's runs alone (where that taught model's first cost "
                 "reaches the budget), the median over seeds and the lowest to the highest; its 1-2-5: the value "
                 "nearest that median. One taught model far from the others moves the mean curve's crossing; the "
                 "median moves only when the middle models do (docs/guide/limitations.md). "
                 + (f"The two 1-2-5 values differ for {', '.join(differ)} (the median's against the mean curve's)." if differ
                    else "The two 1-2-5 values agree for every method."))
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes)


def _nearest_cell(crossing: tuple[float, str] | None) -> str:
    """The 1-2-5 value nearest a crossing inside the swept range; n/a outside it (or undetermined)."""
    return f"{nearest_125(crossing[0]):g}" if crossing is not None and crossing[1] == "inside" else "n/a"


def points_table(points: Sequence[Point]) -> str:
    """Markdown: every swept setting's forget and retain MC drops per modality, and its retain ROUGE-L drops
    when the runs measured them (the generation-cost axis), mean ± std over seeds."""
    by: dict[tuple[str, float], list[Point]] = {}
    for p in points:
        by.setdefault((p.method, p.strength), []).append(p)
    order = {m: i for i, m in enumerate(method_order(m for m, _ in by))}
    cols = [(split, mod, "mc_acc") for split in ("forget", "retain") for mod in MODALITIES]
    if measured(points, "retain", "rougeL"):
        cols += [("retain", mod, "rougeL") for mod in MODALITIES]
    header = ["method", "strength", "seeds"] + [f"{with_metric(f'{MOD_LABEL[mod]} {split}', name)} drop"
                                                for split, mod, name in cols]
    lines = ["| " + " | ".join(header) + " |", "|---|---:|---:|" + "---:|" * len(cols)]
    for (method, strength), ps in sorted(by.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])):
        cells = []
        for split, mod, name in cols:
            values = [d for p in ps if (d := p.drop(split, mod, name)) is not None]
            if not values:
                cells.append("n/a")
                continue
            mean, std = mean_std(values)
            cells.append(f"{mean:+.3f}" if std is None else f"{mean:+.3f} ± {std:.3f}")
        read = sum(1 for p in ps if any(p.drop(split, mod, name) is not None for split, mod, name in cols))
        lines.append(f"| {method} | {knob_name(method, points)} {strength:g} | {read} | " + " | ".join(cells)
                     + " |")
    return "\n".join(lines) + ("\n\n- MC accuracy drop (and retain ROUGE-L drop where measured), before - after "
                               "(positive: lower after), mean ± sample std over seeds; the points the frontier's "
                               "curves are drawn through.")


def curve_label(method: str, by_seed: dict) -> str:
    """A curve's legend entry: its seeds, and the fewest any of its points is the mean of where a seed lacks a
    strength (a failed run; until 2026-12-06 the legend counted the curve's seeds alone)."""
    counts = Counter(s for c in by_seed.values() for s in {st for st, _, _ in c})
    fewest = min(counts.values(), default=len(by_seed))
    return f"{method} ({len(by_seed)} seeds" + (f"; {fewest} at its thinnest point)" if fewest < len(by_seed) else ")")


def plot_frontier(points: Sequence[Point], out_dir: Path, budget: float = BUDGET, cost: str = "retain",
                  cost_metric: str = "mc_acc") -> list[Path]:
    """One PNG per modality: forget MC drop vs the `cost` split's `cost_metric` drop, mean curve per method with
    a ±std band over seeds and each point's ±std in both drops, and at the budget the table's reading (a
    diamond, ± its std over seeds)."""
    plt = _pyplot()
    paths = []
    for mod in MODALITIES:
        fig, ax = plt.subplots(figsize=(7.6, 4.5))
        for i, (m, by_seed) in enumerate(sorted(curves(points, mod, cost, cost_metric).items())):
            strengths = sorted({s for c in by_seed.values() for s, _, _ in c})
            xs, ys, sd, sdx = [0.0], [0.0], [0.0], [0.0]
            for s in strengths:
                rs = [r for c in by_seed.values() for st, r, _ in c if st == s]
                fs = [f for c in by_seed.values() for st, _, f in c if st == s]
                mean_x, std_x = mean_std(rs)
                xs.append(mean_x)
                sdx.append(std_x or 0.0)
                mean, std = mean_std(fs)
                ys.append(mean)
                sd.append(std or 0.0)
            color = f"C{i}"
            ax.plot(xs, ys, marker="o", ms=3, color=color, label=curve_label(m, by_seed))
            ax.fill_between(xs, [y - s for y, s in zip(ys, sd)], [y + s for y, s in zip(ys, sd)], color=color,
                            alpha=0.15, lw=0)
            # the band has no width where a curve runs steep or turns back (MMUnlearner's, at a flat retain
            # cost): each point's spread over seeds in both drops shows there too
            ax.errorbar(xs[1:], ys[1:], xerr=sdx[1:], yerr=sd[1:], fmt="none", ecolor=color, alpha=0.45, lw=0.8,
                        capsize=2)
            # the table's value: each seed's curve read at the budget, then averaged, which is not where the curve
            # of the means meets the budget (GradDiff image+text, seeds 0-2: 0.800 in the table, 0.890 on the
            # curve); hollow where a seed never cost the budget and counts with its strongest setting
            mean, std, missed = seeds_reading(by_seed, budget)
            ax.errorbar([budget], [mean], yerr=[std or 0.0], fmt="D", ms=6, color=color, capsize=3, lw=1,
                        mfc="none" if missed else color, zorder=3)
        ax.axvline(budget, ls="--", color="grey", lw=1)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xlabel(f"{cost} {METRIC_LABEL[cost_metric]} drop (before - after)")
        ax.set_ylabel("forget MC drop (before - after)")
        ax.set_title(f"{'image + text' if mod == 'multimodal' else 'text-only'} questions: forgetting vs. cost")
        ax.plot([], [], "D", color="grey", mfc="grey", label=f"frontier.md's reading at {budget:g}:\neach seed's "
                "crossing, mean ± std\n(hollow: a seed never cost it)")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the axes: it hides no curve
        paths.append(_save(fig, out_dir / f"frontier_{mod}.png"))
    return paths


# ------------------------------------------------------------------------- results at the defaults

VANILLA_FLOOR = 0.95  # issue 11: the vanilla model knows every split x modality at least this well, every seed
STD_CEILING = 0.05  # issue 11: a headline number's std over seeds stays under this
# (split, metric, header) per modality: the columns of the second table (the headline MC is the first)
OTHER_COLUMNS = (("untouched", "mc_acc", "untouched MC ↑"), ("test", "mc_acc", "test MC"),
                 ("forget", "rougeL", "forget ROUGE-L ↓"), ("retain", "rougeL", "retain ROUGE-L ↑"))


def default_strengths(base: Sequence[str] = (), methods: Sequence[str] | None = None,
                      keys: dict[str, str] | None = None) -> dict[str, float]:
    """Each method's strength knob at its config default (what `python train.py method=M` runs); `methods`:
    only these (a sweep's own methods, so that a base override of one method's settings, e.g.
    manu.score=random, is not applied to another method's config, which lacks the key). `keys`: {method: knob
    key} (knob_keys; default: the full grid's); a method without one, or whose config leaves it unset, has no
    default."""
    from omegaconf import OmegaConf

    from unlearn.config import compose_config

    keys = keys if keys is not None else {m: key for m, (key, _) in GRIDS["full"].items()}
    out = {}
    for method in method_order(keys if methods is None else [m for m in methods if m in keys]):
        cfg = compose_config([f"method={method}", *base], ".", ".")
        value = OmegaConf.select(cfg, keys[method], default=None)
        if value is None:
            if method in GRIDS["full"]:
                raise ValueError(f"method={method}: {keys[method]} is not set in its config")
            log.warning("method=%s: its config sets no %s, so the report has no default strength for it",
                        method, keys[method])
            continue
        out[method] = float(value)
    return out


def method_order(methods) -> list[str]:
    """The built-in methods in the tables' order, then the others (yours) by name."""
    given = set(methods)
    return [m for m in METHODS if m in given] + sorted(given - set(METHODS))


def default_groups(points: Sequence[Point], defaults: dict[str, float]):
    """report.SeedGroup per method from its runs at the default strength (methods without such runs left out)."""
    from unlearn.report import Run, SeedGroup

    groups = []
    for method in method_order(defaults):
        runs = [Run(method, method, [f"seed={p.seed}"], p.metrics, Path("."), seed=p.seed,
                    teach_seed=p.seed if p.teach_seed is None else p.teach_seed)
                for p in sorted(points, key=lambda p: p.seed)
                if p.method == method and math.isclose(p.strength, defaults[method], rel_tol=1e-9)]
        if runs:
            groups.append(SeedGroup(f"{method} ({knob_name(method, points)} {defaults[method]:g})", method, runs))
    return groups


def absent_defaults(points: Sequence[Point], defaults: dict[str, float], groups) -> str:
    """A line naming the swept methods with no run at their default strength (left out of the table and checks
    above, which until 2026-12-05 said nothing of them), or ""."""
    shown = {g.method for g in groups}
    absent = [f"{m} ({knob_name(m, points)} {defaults[m]:g})" for m in method_order(defaults)
              if m not in shown and any(p.method == m for p in points)]
    return ("\n- not run at their default strength in this sweep, so not in the table or the checks above: "
            + ", ".join(absent)) if absent else ""


def checks(groups, floor: float = VANILLA_FLOOR, ceiling: float = STD_CEILING) -> list[str]:
    """Issue 11's two robustness criteria, each stated as met or not, with the cells that miss it."""
    from unlearn.report import (SEED_COLUMNS, aggregate, at_least, chance_std_above, independent_std, metric,
                                question_count, vanilla_metrics)

    vanilla = vanilla_metrics(groups)
    values = [(split, mod, metric(ms, f"before/{split}/{mod}/mc_acc")) for ms in vanilla
              for split, mod, _ in SEED_COLUMNS]
    low = [f"{MOD_LABEL[mod]} {split} {v:.3f}" for split, mod, v in values if v is not None and v < floor]
    missing = sum(v is None for _, _, v in values)
    verdict = ("**not met**" + (f" ({', '.join(low)})" if low else "") if low
               else "**not measured**" if missing == len(values) else "**met**")
    lines = [f"vanilla MC >= {floor:g} in forget and retain x both modalities, in each of {len(vanilla)} vanilla "
             "models: " + verdict + (f" ({missing} of {len(values)} cells not measured)" if missing and values else "")]
    wide, chances, wide_with_chance = [], [], 0  # chances: per cell, P(std > ceiling) from question draws alone
    spread = 0  # cells with a std: two seeds or more
    one_seed = []  # methods none of whose cells has a std: the criterion says nothing of them
    for g in groups:
        cells = spread
        for split, mod, _ in SEED_COLUMNS:
            agg = aggregate([r.metrics for r in g.runs], f"after/{split}/{mod}/mc_acc")
            if agg is None or agg[1] is None:
                continue
            spread += 1
            n = question_count([r.metrics for r in g.runs], f"after/{split}/{mod}/mc_acc")
            chance = chance_std_above(agg[0], n, agg[2], ceiling) if n and 0.0 <= agg[0] <= 1.0 else None
            if chance is not None:
                chances.append(chance)
            if agg[1] > ceiling + TOLERANCE:
                wide_with_chance += chance is not None
                # enough digits that a std just over the ceiling does not print as it (0.0503 as 0.050)
                shown = f"{agg[1]:.3f}" if round(agg[1], 3) > ceiling else f"{agg[1]:.4f}"
                cell = f"{g.method} {MOD_LABEL[mod]} {split} ± {shown}"
                if chance is not None:  # what that many questions would spread by if answered independently
                    cell += f" (independent questions: ± {independent_std(agg[0], n):.3f}, wider than {ceiling:g} " \
                            f"with probability {chance:.2f})"
                wide.append(cell)
        if spread == cells:
            one_seed.append(g.method)
    unmeasured = f" (one seed, not measured: {', '.join(one_seed)})" if one_seed and spread else ""
    lines.append(f"every method's headline MC (forget and retain per modality, default strength) has std <= "
                 f"{ceiling:g} over seeds: " + ("**not measured** (no cell has two seeds)" if not spread
                                               else f"**met**{unmeasured}" if not wide
                                               else f"**not met** ({'; '.join(wide)}){unmeasured}"))
    if any("independent questions" in w for w in wide):
        lines.append("independent questions: sqrt(p (1 - p) / n) at the cell's mean p over its n questions, the "
                     "spread if each model answered each question independently at that rate (a reference for "
                     "what the split resolves; models that forget the same questions spread less), and the "
                     f"probability that the sample std over the cell's seeds then exceeds {ceiling:g} "
                     "(`unlearn.report.chance_std_above`).")
    if chances:
        lines.append(f"from those draws alone, with the models otherwise alike, {sum(chances):.1f} of the "
                     f"{len(chances)} method cells would be expected wider than {ceiling:g}, all of them within it "
                     f"with probability {math.prod(1.0 - c for c in chances):.2g}, and {wide_with_chance} or more "
                     f"wider with probability {at_least(chances, wide_with_chance):.2g}: a reference for how many "
                     "wide cells the criterion allows at these means and split sizes, not a floor.")
    return lines


def results_markdown(points: Sequence[Point], frontier: str, images: str, command: str,
                     defaults: dict[str, float], timing: Sequence[dict], budget: float = BUDGET,
                     unfinished: Collection[tuple[str, float, int]] = (), notes: str | None = None) -> str:
    """docs/results.md: the defaults over seeds, the likelihood metrics, the robustness checks, the frontier."""
    from unlearn.report import has_likelihood, likelihood_table, seed_table, spread_table

    groups = default_groups(points, defaults)
    seeds = sorted({p.seed for p in points})
    intro = (f"# Unlearning results\n\nEvery method over seeds {', '.join(map(str, seeds))}, from one sweep of "
             f"each method's strength (`unlearn/frontier.py`).")
    if timing:
        runs, wall = sum(t["runs"] for t in timing), sum(t["wall_s"] for t in timing)
        intro += (f" The sweep: {runs} runs in {wall:.0f} s of wall time"
                  + (f" over {len(timing)} invocations (resumed; each ran only the runs it lacked)" if len(timing) > 1
                     else "") + ":\n\n```bash\n"
                  + "\n".join(f"{t['command']}  # {t['runs']} runs, {t['jobs']} worker(s), {t['wall_s']:.0f} s"
                              for t in timing) + "\n```\n\nThis page, from its runs:")
    else:
        intro += " Produced by (from the repository root):"
    parts = [f"{intro}\n\n```bash\n{command}\n```{made_by(points) if notes is None else notes}"]
    if groups:
        other = spread_table(groups, [f"{MOD_LABEL[mod]} {h}" for mod in MODALITIES for _, _, h in OTHER_COLUMNS],
                             [f"{split}/{mod}/{m}" for mod in MODALITIES for split, m, _ in OTHER_COLUMNS])
        runs = [r for g in groups for r in g.runs]
        own = len({r.teach_seed for r in runs}) == len({r.seed for r in runs})
        parts.append("## Each method at its default strength\n\nMC accuracy (likelihood over the options), "
                     "mean ± sample std over seeds; "
                     + ("each seed has its own vanilla model (its own teaching, or its own stage 2 from one base on "
                        "the organism)" if own else "the vanilla row is over the distinct teaching seeds (the runs "
                        "share vanilla models)") + ".\n\n"
                     + seed_table(groups) + "\n\n" + other + "\n\n" + "\n".join(f"- {c}" for c in checks(groups))
                     + absent_defaults(points, defaults, groups))
        if has_likelihood(runs):
            parts.append("## Likelihood metrics at the default strength\n\n" + likelihood_table(groups))
    elif absent := absent_defaults(points, defaults, groups):  # until 2026-12-06 the section went without a word
        parts.append("## Each method at its default strength\n\nNo method was swept at its default strength (a grid "
                     "without the defaults, such as `--grid fast`): no table, no robustness checks." + absent)
    parts.append(f"## At equal cost: the frontier\n\n{frontier}\n\n{images}")
    if measured(points, "untouched"):
        parts.append("## At equal untouched cost\n\nThe same runs with the cost read on the untouched set (knowledge "
                     "no method reads while unlearning; GradDiff, KL and MMUnlearner train on the retain set, so the "
                     "retain axis above measures what they hold on purpose). Plots: `--cost untouched`.\n\n"
                     + frontier_table(points, budget, "untouched", unfinished=unfinished))
    if measured(points, "retain", "rougeL"):
        parts.append("## At equal generation cost\n\nThe same runs with the cost read as the retain set's generation "
                     "ROUGE-L: what a model still says about the people it keeps. MC likelihood compares the "
                     "options against each other, so it can hold while the model's answers fall apart; see where "
                     "each method's ROUGE-L crossing sits against its MC one below. Plots: `--cost-metric rougeL`."
                     "\n\n" + frontier_table(points, budget, "retain", "rougeL", unfinished))
    parts.append(f"## Where each method costs {BUDGET:g} of retain\n\nA model's defaults (`model.unlearn_lr` and "
                 "`model.manu_alpha` in its config) are the 1-2-5 values nearest the strength at which the first of "
                 f"each method's retain costs, MC or generation ROUGE-L, reaches {BUDGET:g} on the model's own frontier "
                 "(the embedded default's: docs/results.md; the organism's: its full-stage-2 frontier), so its "
                 "defaults compare the methods at about equal utility; a method that never reaches it keeps its own "
                 "default. The default column is what this sweep's configuration runs."
                 + (f" The rule reads {BUDGET:g} whatever budget the tables above compare at (--budget {budget:g})."
                    if budget != BUDGET else "")
                 + "\n\n" + equal_cost_table(points, defaults))
    parts.append("## Every swept setting\n\n" + points_table(points))
    return "\n\n".join(parts) + "\n"


def made_by(points: Sequence[Point]) -> str:
    """A paragraph for a page whose runs were made by different code (a sweep resumed across commits), or whose
    curves pool runs of different settings; "" where neither."""
    return made_by_notes(mixed_code([p.code for p in points], [p.code_key for p in points]), mixed_settings(points))


def made_by_notes(mixed: str | None, pooled: str | None) -> str:
    """made_by's paragraph from its two findings (a report reads each once, for its log and both pages)."""
    return ((f"\n\n**Note**: {mixed}; a difference between settings may be the code's." if mixed else "")
            + (f"\n\n**Note**: {pooled}." if pooled else ""))


def mixed_settings(points: Sequence[Point]) -> str | None:
    """Which methods' curves pool runs whose recorded settings differ beyond their seeds and their knob (runs copied
    or resumed into one --out by hand: the sweep itself refuses another --base), naming the keys; None where none
    do. Until 2026-12-06 the frontier read no config.json, so such runs were pooled without a word."""
    from unlearn.report import recorded_setting

    by_method: dict[str, list[dict]] = {}
    keys: dict[Path, dict[str, str]] = {}  # each sweep's {method: knob key} (its directories name the key's leaf)
    for p in points:
        mfile = p.path / "metrics.json" if p.path is not None else None  # a point made in memory has no files
        setting = recorded_setting(p.path, json.loads(mfile.read_text())) if mfile and mfile.is_file() else None
        if setting is None:
            continue
        out = p.path.parents[2]
        knob = keys.setdefault(out, knob_keys(out)).get(p.method, p.knob)
        by_method.setdefault(p.method, []).append({k: v for k, v in setting.items() if k != knob})
    found = []
    for method, settings in sorted(by_method.items()):
        keys = sorted({k for s in settings for k in s
                       if len({json.dumps(x.get(k), sort_keys=True, default=str) for x in settings}) > 1})
        if keys:
            found.append(f"{method} ({', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''})")
    return ("runs of different settings are pooled in one curve: " + "; ".join(found)) if found else None


def _timing(out: Path) -> list[dict]:
    """The sweep invocations recorded under `out`, oldest first (an older single-record file is one)."""
    f = out / TIMING_FILE
    if not f.is_file():
        return []
    data = json.loads(f.read_text())
    return [data] if isinstance(data, dict) else data


def report(out: Path, docs: Path | None, command: str, budget: float = BUDGET, base: Sequence[str] = (),
           cost: str = "retain", cost_metric: str = "mc_acc", knobs: Sequence[str] = ()) -> Path:
    """frontier.md (table + plots) and results.md (defaults over seeds + frontier) into `docs` (default: `out`);
    with another cost axis than retain MC, frontier.md and the plots only (results.md is the retain-MC page).

    Returns frontier.md's path.
    """
    points = load_points(out)
    if not points:
        raise FileNotFoundError(f"no runs under {out} (expected {out}/<method>/<knob>=<value>/seed<k>/metrics.json)")
    # the defaults the page reads are those of the runs' own --base (until 2026-12-05 --report-only took whatever
    # --base it was given: the organism's defaults over the embedded sweep showed KL at another lr, GradDiff not)
    made = runs_base(out)
    if made is not None and base and list(base) != made:
        raise ValueError(f"--base {list(base)}: the runs in {out} were made with --base {made}; give theirs, or none "
                         "(the runs' own is read)")
    base = made if made is not None else list(base)
    keys = checked_knob_keys(out, points, knobs)  # before anything is written
    # each read once: log and pages
    mixed, pooled = mixed_code([p.code for p in points], [p.code_key for p in points]), mixed_settings(points)
    if mixed:
        log.warning(mixed)
    if pooled:
        log.warning("%s: %s", out, pooled)
    notes = made_by_notes(mixed, pooled)
    if unread := unread_base_note(base, sorted({p.method for p in points})):
        log.warning("%s: %s", out, unread)
        notes += f"\n\n**Note**: {unread}."
    dest = docs or out
    other_axis = (cost, cost_metric) != ("retain", "mc_acc")
    if other_axis and (dest / "results.md").is_file():  # its frontier.md and plots are the retain-MC ones
        raise FileExistsError(f"{'--docs' if docs else '--out'} {dest} holds the retain-MC page (results.md), whose "
                              f"frontier.md and plots a report at equal {cost_axis(cost, cost_metric)} cost would "
                              "replace; nothing was written: give it its own --docs")
    unfinished = unfinished_runs(out)
    if note := unfinished_note(unfinished):
        log.warning("%s: %s", out, note)
    table = frontier_table(points, budget, cost, cost_metric, unfinished)
    paired = paired_table(points, budget, cost, cost_metric)
    if paired:
        table += "\n\n### Seed by seed\n\n" + paired
    plots = plot_frontier(points, dest, budget, cost, cost_metric)
    images = "\n\n".join(f"![{p.stem}]({os.path.relpath(p, dest)})" for p in plots)
    text = (f"# Frontier: forgetting at equal {cost_axis(cost, cost_metric)} cost\n\nProduced by (from the repository root):\n\n"
            f"```bash\n{command}\n```{notes}\n\n{table}\n\n{images}\n")
    md = dest / "frontier.md"
    write_atomic(md, lambda f: f.write(text.encode()))
    if other_axis:
        print(text + f"\nwrote {md}" + "".join(f"\nwrote {p}" for p in plots))
        return md
    defaults = default_strengths(base, sorted({p.method for p in points}), keys)
    results = results_markdown(points, table, images, command, defaults, _timing(out), budget, unfinished, notes)
    write_atomic(dest / "results.md", lambda f: f.write(results.encode()))
    print(results)
    print(f"\nwrote {md}\nwrote {dest / 'results.md'}" + "".join(f"\nwrote {p}" for p in plots))
    return md


def argument_parser() -> argparse.ArgumentParser:
    """The command line (unlearn.reproduce reads a page's sweep commands with it too)."""
    parser = argparse.ArgumentParser(prog="python -m unlearn.frontier", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="sweep dir (resumable: finished runs are skipped)")
    parser.add_argument("--grid", choices=sorted(GRIDS), default="full")
    parser.add_argument("--seeds", type=int, nargs="+", help="taught models to sweep (default: 0 1 2)")
    parser.add_argument("--methods", nargs="+", help="sweep only these methods of the grid (default: all; "
                        "to extend one method's strengths in an existing sweep)")
    parser.add_argument("--base", action="append", default=[], help="extra override for every run (repeatable)")
    parser.add_argument("--knob", action="append", default=[], metavar="METHOD=KEY:V1,V2,...",
                        help="sweep METHOD along KEY at these strengths, beside the grid's methods or in place of "
                             "its entry (repeatable): a method of your own (docs/guide/adding_a_method.md), or "
                             "another knob of a built-in one (in its own --out)")
    parser.add_argument("--cache", help="cache dir (default: $UNLEARN_CACHE or ./.cache)")
    parser.add_argument("--docs", help="where frontier.md and the PNGs go (default: --out)")
    parser.add_argument("--budget", type=float, default=BUDGET, help="cost drop at which to compare")
    parser.add_argument("--cost", choices=COSTS, default="retain",
                        help="the cost axis: retain MC drop (default) or untouched MC drop (knowledge no method "
                             "trains on; writes frontier.md and the plots only)")
    parser.add_argument("--cost-metric", choices=sorted(METRIC_LABEL), default="mc_acc",
                        help="the metric the cost split is read in: MC accuracy (default), generation ROUGE-L or "
                             "cloze accuracy (other than mc_acc: frontier.md and the plots only)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="worker processes, one torch thread each (default 1: in this process, on one thread)")
    parser.add_argument("--report-only", action="store_true", help="redraw from --out, run nothing")
    return parser


def main(argv: Sequence[str] | None = None) -> Path:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = argument_parser()
    args = parser.parse_args(args_list)
    # before any run (until 2026-12-05 a repeated seed ran twice and then failed as a finished run, and a budget
    # <= 0 or nan was refused, or drawn, only after the whole sweep)
    if not (math.isfinite(args.budget) and args.budget > 0):
        parser.error(f"--budget {args.budget}: expected a finite cost drop > 0")
    # the page reads every seed under --out: until 2026-12-05 `--report-only --seeds 0` printed that command above
    # a table of every seed
    if args.report_only and args.seeds is not None:
        parser.error("--seeds with --report-only: the page reads every seed's runs under --out; sweep the ones to "
                     "draw into their own --out")
    args.seeds = [0, 1, 2] if args.seeds is None else args.seeds
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds {' '.join(map(str, args.seeds))}: a seed given twice")
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: expected >= 1")
    if args.methods and len(set(args.methods)) != len(args.methods):
        parser.error(f"--methods {' '.join(args.methods)}: a method given twice")
    try:
        swept = [parse_knob(k)[0] for k in args.knob]
    except ValueError as e:
        parser.error(str(e))
    if len(set(swept)) != len(swept):
        parser.error(f"--knob: a method given twice ({', '.join(sorted({m for m in swept if swept.count(m) > 1}))})")
    out = Path(args.out)
    if not args.report_only:
        os.environ.setdefault("WANDB_MODE", "disabled")
        from unlearn.runtime import quiet_libraries

        quiet_libraries()
        cache = Path(args.cache or os.environ.get("UNLEARN_CACHE", ".cache"))
        start = time.perf_counter()
        ran = sweep(out, args.grid, args.seeds, args.base, cache.resolve(), args.jobs, args.methods, args.knob)
        took = time.perf_counter() - start
        print(f"frontier sweep: {ran} runs in {took:.0f} s")
        if ran:
            timing = [*_timing(out), {"wall_s": took, "jobs": args.jobs, "threads": 1, "runs": ran, "seeds": args.seeds,
                                      "command": command_line(args_list)}]
            write_atomic(out / TIMING_FILE, lambda f: f.write(json.dumps(timing).encode()))
    return report(out, Path(args.docs) if args.docs else None, command_line(args_list),
                  args.budget, args.base, args.cost, args.cost_metric, args.knob)


def command_line(args_list: Sequence[str]) -> str:
    """The command a page prints, with the PYTHONPATH a method of one's own is imported through (until 2026-12-06
    left out: `PYTHONPATH=examples/simnpo` was needed to rerun it). Entries inside the working directory are
    written relative to it, the directory itself (where the command runs) left out."""
    here = Path.cwd().resolve()
    paths = []
    for entry in filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)):
        path = Path(entry).resolve()
        if path == here:
            continue
        paths.append(str(path.relative_to(here)) if path.is_relative_to(here) else entry)
    prefix = f"PYTHONPATH={shlex.quote(os.pathsep.join(paths))} " if paths else ""
    return f"{prefix}python -m unlearn.frontier {shlex.join(args_list)}"


if __name__ == "__main__":
    from unlearn.runtime import ctrl_c_as_exit, refusals_as_messages, sigterm_as_exit, started

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sigterm_as_exit()  # a run in this process stopped by SIGTERM removes what it was writing
    started()
    with ctrl_c_as_exit():  # a run in this process: its message and status 130, not a traceback (as train.py)
        refusals_as_messages(main)
