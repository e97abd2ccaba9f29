import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def threads_per_worker(cores: int, workers: int) -> int:
    """Torch threads for each of `workers` pytest-xdist workers sharing `cores`: the cores split between them, at
    least one. Two workers of two threads on two cores contend (OpenMP's idle threads spin on a core the other
    worker needs): the suite took longer in user time than without xdist (docs/guide/measured.md)."""
    return max(1, cores // max(1, workers))


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker per core this process may run on (xdist's own count reads psutil's, every core of the
    host, where a container or `taskset` allows fewer)."""
    return len(os.sched_getaffinity(0))


if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):  # a worker of `pytest -n N` (`make test`): before torch loads
    # Set in the environment, so the runs a test launches (train.py, two-process scripts) inherit it: their cache keys
    # (the thread count is in the vanilla model's) stay the worker's.
    os.environ["OMP_NUM_THREADS"] = str(threads_per_worker(len(os.sched_getaffinity(0)),
                                                           int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))

from unlearn.data.benchmark import Benchmark  # noqa: E402
from unlearn.data.mllmu_mini import MiniSpec, load_or_build  # noqa: E402
from unlearn.models.tiny_llava import TinyLlavaSpec, build_tiny_llava  # noqa: E402

SMALL = MiniSpec(num_people=12, num_untouched=4, seed=0, train_variants=2)


@pytest.fixture(autouse=True)
def _environment_restored():
    """Each test leaves the environment as it found it: what a run sets in os.environ (Lightning's seed_everything
    its PL_GLOBAL_SEED, agreed() its UNLEARN_RANK0_DECIDED_* decisions) reached every later test in the same worker
    until 2026-12-07 (a helper's flakiness hunt). Session fixtures set theirs before the snapshot, and keep them."""
    saved = dict(os.environ)
    yield
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    for key, value in saved.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def small_splits(cache_dir):
    return load_or_build(SMALL, cache_dir)


@pytest.fixture(scope="session")
def small_benchmark(small_splits):
    return Benchmark(small_splits, "forget_10", name="small")


@pytest.fixture()
def tiny_model():
    return build_tiny_llava(TinyLlavaSpec())


@pytest.fixture(scope="session")
def taught_fast(tmp_path_factory):
    """debug=fast's vanilla model (and its benchmark) in a cache of its own, taught once per session by
    `ensure_vanilla` in a fresh process, as a test's own run would teach it: the same cache key (the thread count
    included), so the same weights (teaching is seeded by teach_seed). Tests whose subject is not the teaching
    start from a copy of it (`seed_cache`) instead of each teaching its own (about 10 s each, idle, on 2 cores)."""
    cache = tmp_path_factory.mktemp("taught_fast") / "cache"
    teach = ("import sys; from hydra.utils import instantiate; from unlearn.config import compose_config; "
             "from unlearn.pipeline import ensure_vanilla; from pathlib import Path; "
             "cfg = compose_config(['debug=fast', 'logger=none'], Path(sys.argv[1]) / 'out', Path(sys.argv[1])); "
             "print(ensure_vanilla(cfg, instantiate(cfg.data.benchmark)))")
    done = subprocess.run([sys.executable, "-c", teach, str(cache)], cwd=Path(__file__).resolve().parents[1],
                          env={**os.environ, "WANDB_MODE": "disabled"}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (vanilla,) = (cache / "vanilla").iterdir()
    assert done.stdout.strip().endswith(vanilla.name), done.stdout[-2000:]
    return vanilla


def seed_cache(taught: Path, cache: Path) -> Path:
    """`cache` (a test's own) holding a copy of `taught_fast`'s model and benchmark: a run of debug=fast's recipe
    there reads it ("vanilla model: reusing") instead of teaching it. Returns the copied model's directory."""
    import shutil

    for part in ("vanilla", "data"):
        shutil.copytree(taught.parent.parent / part, cache / part, dirs_exist_ok=True)
    return cache / "vanilla" / taught.name


def run_script(devices: int, script: Path, work: Path, *args: str, timeout: int = 600):
    """The saved result of `python script --devices D --cache work/cache --out work/<file> *args` (tests/scripts/);
    a failed run fails the caller with its stderr."""
    import hashlib

    import torch

    out = work / f"{Path(script).stem}_{devices}_{hashlib.sha1(repr(args).encode()).hexdigest()[:12]}.pt"
    proc = subprocess.run([sys.executable, str(script), "--devices", str(devices), "--cache", str(work / "cache"),
                           "--out", str(out), *args], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{Path(script).name} {' '.join(args)} on {devices}: {proc.stderr[-4000:]}"
    return torch.load(out, weights_only=False)


@pytest.fixture(scope="session")
def launches(tmp_path_factory):
    """`launches(devices, script, *args)`: `run_script`'s result, launched once per session for each distinct
    (devices, script, args): tests that read different cases of one launch share it, since a launch costs about 5 s
    of imports before any work, and 10-12 s for two processes (CI: 2 cores). A failed launch fails every test that
    reads it, with its stderr, and is not run again."""
    root, done = tmp_path_factory.mktemp("launches"), {}

    def launch(devices: int, script: Path, *args: str, timeout: int = 600):
        key = (devices, str(script), args)
        if key not in done:
            try:
                done[key] = (None, run_script(devices, script, root, *args, timeout=timeout))
            except (AssertionError, subprocess.TimeoutExpired) as e:  # once: the other readers are not kept waiting
                done[key] = (e, None)
        failed, result = done[key]
        if failed is not None:
            raise failed
        return result

    return launch


def in_one_launch(launches, devices: int, *runs) -> dict:
    """{script: its result} of tests/scripts/in_one_launch.py running `runs` ((script, *its arguments), ...) in turn
    on `devices` processes: one launch, shared for the session (`launches`), for scripts a launch each would cost
    5 s of imports per process."""
    return launches(devices, Path(__file__).parent / "scripts" / "in_one_launch.py",
                    *(token for run in runs for token in ("::", *run)))
