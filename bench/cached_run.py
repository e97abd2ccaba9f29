"""Where a cached `python train.py` (MANU on the embedded default) spends its time, measured side by side.

Why: issue 11 asks for a cached run of <= 10 s. This prints the whole run as a user starts it (a fresh
process, with and without W&B, and with the interpreter's own exit instead of `train.py`'s
`exit_without_teardown`), the import of what `train.py` needs (a fresh process; Lightning's own share is
read on top of transformers' LLaVA classes, which import torch._dynamo and scipy themselves), and, in one process,
each phase of `unlearn.pipeline.run`: loading the data and the model, the cached before-evaluation, MANU,
the evaluation after it, and each evaluation task inside it.

Run: `.venv/bin/python -m bench.cached_run [--cache DIR]` (the first call teaches the vanilla model into the
cache, as `make run` does; keep other work off the machine while it measures). What one setting costs:
`--cache DIR --phases-only --phase-override eval.mc_also=null`, beside the same without the override (`--threads N`:
the phases on N torch threads). Each fresh-process figure is
the median of `--repeat` interleaved runs, with its range: this shared machine's speed drifts by a quarter
within a session. `--against REV` times the same two `python train.py` commands at another commit (a temporary
git worktree with its own cache, taught first) interleaved with this checkout's, and prints the ratio: whether
the code got slower or the machine did (from one session to the next the same code's cached run took 9.1 s and
14.6 s on one kind of processor).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import ExitStack, contextmanager
from pathlib import Path

from unlearn.runtime import FULL_EXIT_ENV

ROOT = Path(__file__).resolve().parents[1]
IMPORTS = ("torch", "transformers", "lightning", "wandb", "unlearn.pipeline")
# transformers' LLaVA classes import torch._dynamo and scipy themselves, so Lightning's import of them costs a run
# nothing: Lightning's share is what it adds on top of these
MODEL_IMPORTS = ("import torch, transformers and the LLaVA classes (fresh process)",
                 "import torch, transformers; from transformers import LlavaForConditionalGeneration, LlavaProcessor")
CACHED_RUNS = ("python train.py (W&B offline), cached", "python train.py logger=none, cached")
WITH_LIGHTNING = ("  the same, then import lightning", MODEL_IMPORTS[1] + "; import lightning")
# Lightning's logging imports torchmetrics, whose package import loads scipy.signal and matplotlib.pyplot (most of
# Lightning's share in the fifty-fourth session's `python -X importtime`): its part of that share
WITH_TORCHMETRICS = ("  the same, then import torchmetrics (Lightning imports it)",
                     MODEL_IMPORTS[1] + "; import torchmetrics")


def fresh_process(code: str, env: dict) -> float:
    """Start, run `code`, exit without the interpreter's teardown (its cost is in the full-exit row)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"{code}; import os; os._exit(0)"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    return time.perf_counter() - start


def train_py(args: list[str], env: dict, out: Path, root: Path = ROOT) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "train.py", *args, f"hydra.run.dir={out}"], cwd=root, env=env, check=True,
                   capture_output=True)
    return time.perf_counter() - start


@contextmanager
def checkout_of(rev: str, where: Path):
    """A detached git worktree of `rev` (removed after), run with this interpreter: the packages stay the same,
    so the two checkouts differ in their code alone."""
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(where), rev], cwd=ROOT, check=True)
    try:
        yield where
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(where)], cwd=ROOT, check=False)


def against_rows(rev: str, times: dict[str, list[float]], ours: tuple[str, str],
                 theirs: tuple[str, str]) -> list[tuple[str, str]]:
    """This checkout's median over `rev`'s, per command: above 1 where this code is slower."""
    return [(f"  ratio, this checkout / {rev} ({kind})",
             f"{statistics.median(times[mine]) / statistics.median(times[other]):6.3f}")
            for kind, mine, other in (("W&B offline", ours[0], theirs[0]), ("logger=none", ours[1], theirs[1]))]


@contextmanager
def timed(table: dict, name: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        table[name] += time.perf_counter() - start


def wrap(obj, attr: str, table: dict, name: str) -> None:
    fn = getattr(obj, attr)

    def timed_fn(*a, **k):
        with timed(table, name):
            return fn(*a, **k)

    setattr(obj, attr, timed_fn)


def phases(cache: Path, out: Path, overrides: list[str] = (), warm: bool = False) -> dict[str, float]:
    """One cached run in this process, its phases timed by wrapping the functions that do them; `overrides`:
    Hydra overrides for that run (e.g. eval.mc_also=null, to see what a setting costs). `warm`: one untimed
    run first, which fills the cache for this process's thread count (its vanilla models have their own key
    on another count than the fresh processes', unlearn/pipeline.py `teaches_on_cpu`)."""
    from unlearn import pipeline
    from unlearn.config import compose_config
    from unlearn.eval import evaluator
    from unlearn.methods import manu
    from unlearn.runtime import quiet_libraries

    quiet_libraries()
    if warm:
        # beside the timed run, not inside it: a run dir holding another run's weights is refused
        pipeline.run(compose_config(["method=manu", "logger=none", *overrides], out.parent / f"{out.name}_warm",
                                    cache))
    table: dict[str, float] = defaultdict(float)
    wrap(pipeline, "load_configured", table, "load the vanilla model")
    wrap(pipeline, "evaluate_before", table, "before-evaluation (cached)")
    wrap(pipeline, "evaluate", table, "evaluation after")
    wrap(manu, "run", table, "MANU (statistics, scores, pruning)")
    for fn, name in (("score_mc", "  MC (likelihood and letter generation)"),
                     ("score_generation", "  generation and cloze"),
                     ("score_probabilities", "  truth-ratio likelihoods")):
        wrap(evaluator, fn, table, name)  # the names the evaluation module calls
    cfg = compose_config(["method=manu", "logger=none", *overrides], out, cache)
    with timed(table, "whole run (in process)"):
        pipeline.run(cfg)
    return dict(table)


def median_and_range(times: list[float]) -> str:
    times = sorted(times)
    spread = f"  ({times[0]:.2f}-{times[-1]:.2f}, {len(times)} runs)" if len(times) > 1 else ""
    return f"{statistics.median(times):6.2f} s{spread}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", help="cache dir (default: a temporary one, taught first)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="fresh-process runs of each command, interleaved; the median is printed (default 3)")
    parser.add_argument("--phase-override", action="append", default=[], metavar="KEY=VALUE",
                        help="Hydra override for the in-process phase timing only (repeatable)")
    parser.add_argument("--phases-only", action="store_true",
                        help="only the in-process phase timing (no fresh-process runs)")
    parser.add_argument("--against", metavar="REV",
                        help="also time the cached train.py at this commit, interleaved, and print the ratio")
    parser.add_argument("--threads", type=int, help="torch threads for the in-process phase timing (default: torch's; "
                                                    "an untimed run first teaches and evaluates that count's model)")
    args = parser.parse_args()
    if args.against and args.phases_only:
        parser.error("--against times fresh-process runs; --phases-only runs none")
    import torch

    warm = bool(args.threads) and args.threads != torch.get_num_threads()  # another count: its own model
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        tmp = Path(tmp)
        cache = Path(args.cache).resolve() if args.cache else tmp / "cache"
        env = {**os.environ, "UNLEARN_CACHE": str(cache), "WANDB_MODE": "offline"}
        env.pop(FULL_EXIT_ENV, None)
        rows: list[tuple[str, list[float]]] = []
        if not (args.phases_only and args.cache):  # teaches into a new cache, or times the first cached run
            rows.append(("python train.py logger=none, first in this cache", [train_py(["logger=none"], env,
                                                                                      tmp / "first")]))
        commands = [] if args.phases_only else [
            (CACHED_RUNS[0], lambda i: train_py([], env, tmp / f"wandb{i}")),
            (CACHED_RUNS[1], lambda i: train_py(["logger=none"], env, tmp / f"none{i}")),
            (f"  the same with the interpreter's own exit ({FULL_EXIT_ENV}=1)",
             lambda i: train_py(["logger=none"], {**env, FULL_EXIT_ENV: "1"}, tmp / f"full{i}")),
            ("python -c pass (interpreter start)", lambda i: fresh_process("pass", env)),
            *[(f"import {mod} (fresh process)", lambda i, mod=mod: fresh_process(f"import {mod}", env))
              for mod in IMPORTS],
            ("import all of them (fresh process)",
             lambda i: fresh_process("; ".join(f"import {m}" for m in IMPORTS), env)),
            (MODEL_IMPORTS[0], lambda i: fresh_process(MODEL_IMPORTS[1], env)),
            (WITH_LIGHTNING[0], lambda i: fresh_process(WITH_LIGHTNING[1], env)),
            (WITH_TORCHMETRICS[0], lambda i: fresh_process(WITH_TORCHMETRICS[1], env)),
        ]
        other = stack.enter_context(checkout_of(args.against, tmp / "against")) if args.against else None
        if other is not None:
            other_env = {**env, "UNLEARN_CACHE": str(tmp / "against_cache")}
            rows.append((f"python train.py logger=none at {args.against}, first in its cache",
                         [train_py(["logger=none"], other_env, tmp / "against_first", other)]))
            theirs = tuple(f"{name}, at {args.against}" for name in CACHED_RUNS)
            commands[2:2] = [  # beside this checkout's, so each round runs the four one after another
                (theirs[0], lambda i: train_py([], other_env, tmp / f"against_wandb{i}", other)),
                (theirs[1], lambda i: train_py(["logger=none"], other_env, tmp / f"against_none{i}", other))]
        times: dict[str, list[float]] = defaultdict(list)
        for i in range(args.repeat):  # interleaved, so a slow spell of a shared machine hits every command
            for name, command in commands:
                times[name].append(command(i))
        rows += [(name, times[name]) for name, _ in commands]
        if times[WITH_LIGHTNING[0]]:  # what Lightning adds to what the model's own imports load anyway
            rows.append(("  Lightning's own share (difference of the two medians)",
                         [statistics.median(times[WITH_LIGHTNING[0]]) - statistics.median(times[MODEL_IMPORTS[0]])]))
            rows.append(("  torchmetrics' part of it (difference of the two medians)",
                         [statistics.median(times[WITH_TORCHMETRICS[0]]) - statistics.median(times[MODEL_IMPORTS[0]])]))
        if other is not None:
            rows += against_rows(args.against, times, CACHED_RUNS, theirs)
        os.environ.update(UNLEARN_CACHE=str(cache))
        label = f" [{' '.join(args.phase_override)}]" if args.phase_override else ""
        rows += [(f"in process{label}: {k}", [v])
                 for k, v in phases(cache, tmp / "phases", args.phase_override, warm=warm).items()]
    width = max(len(n) for n, _ in rows)
    for name, seconds in rows:  # a ratio comes formatted
        print(f"{name:<{width}}  {seconds if isinstance(seconds, str) else median_and_range(seconds)}")


if __name__ == "__main__":
    main()
