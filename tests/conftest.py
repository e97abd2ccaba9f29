import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from unlearn.data.benchmark import Benchmark  # noqa: E402
from unlearn.data.mllmu_mini import MiniSpec, load_or_build  # noqa: E402
from unlearn.models.tiny_llava import TinyLlavaSpec, build_tiny_llava  # noqa: E402

SMALL = MiniSpec(num_people=12, num_untouched=4, seed=0, train_variants=2)


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
    import subprocess
    import sys

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


@pytest.fixture(scope="session")
def launches(tmp_path_factory):
    """`launches(devices, script, *args)`: the saved result of `python script --devices D --cache C --out O *args`
    (tests/scripts/), launched once per session for each distinct (devices, script, args): tests that read
    different cases of one launch share it, since a launch costs about 5 s of imports before any work, and 10-12 s
    for two processes (CI: 2 cores). A failed launch fails every test that reads it, with its stderr."""
    import subprocess
    import sys

    import torch

    root, done = tmp_path_factory.mktemp("launches"), {}

    def launch(devices: int, script: Path, *args: str, timeout: int = 600):
        key = (devices, str(script), args)
        if key not in done:
            out = root / f"{Path(script).stem}_{len(done)}_{devices}.pt"
            try:
                proc = subprocess.run([sys.executable, str(script), "--devices", str(devices), "--cache",
                                       str(root / "cache"), "--out", str(out), *args],
                                      capture_output=True, text=True, timeout=timeout)
                done[key] = (proc.returncode, proc.stderr[-4000:],
                             torch.load(out, weights_only=False) if proc.returncode == 0 else None)
            except subprocess.TimeoutExpired as e:  # once: the other readers are not kept waiting again
                done[key] = (None, f"timed out after {timeout} s: {str(e.stderr)[-4000:]}", None)
        returncode, stderr, result = done[key]
        assert returncode == 0, f"{Path(script).name} {' '.join(args)} on {devices}: {stderr}"
        return result

    return launch
