"""`python train.py` on one process and on two (trainer=ddp_sim, every per-process batch size halved) from one
vanilla model: the same metrics.json numbers and items.json records, end to end (before-evaluation, the method's
passes and steps, MANU's and MMUnlearner's masks, the after-evaluation, what rank 0 writes). tests/test_ddp.py
holds each piece in its own script; this holds the pipeline that joins them, as a user runs it: the one-process
runs as one `-m` sweep, each two-process run after it. The later two-process cases read the first one's cached
before-evaluation, so their second rank starts at the method's first Trainer, as on a user's second run (where
MMUnlearner's reused mask is in the run directory already: tests/test_run_dir.py)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cli import NOT_WARNED, ROOT, train

# each case a method with its settings (tests/configs/ddp_case/: NPO+RT's alpha 1.0, MMUnlearner's one epoch), and
# what its two-process run sets besides: per-process batch sizes, where W processes at B / W take the steps of one
# process at B (docs/guide/gradient_baselines.md)
CASES = {
    "grad_diff": ["method.batch_size=8"],
    "npo": ["method.batch_size=8"],
    # the Fisher sums of one and two processes differ by float rounding, so a few of ~170,000 elements may fall
    # on either side of gamma (6 on one machine, none on another): the two-process run reads the one-process
    # run's mask, and tests/test_ddp.py holds the Fisher pass itself to a tolerance
    "mmunlearner": ["mmunlearner.batch_size=8", "mmunlearner.mask_path={one}/mmunlearner/mask.safetensors"],
    "manu": [],
}
CASE_CONFIGS = f"hydra.searchpath=[file://{ROOT / 'tests' / 'configs'}]"
NOT_NUMBERS = ("time/",)  # wall-clock seconds


def _close(a, b, where):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _close(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, (int, float)):
        assert math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-5), (where, a, b)
    else:
        assert a == b, (where, a, b)


@pytest.fixture(scope="module")
def vanilla(taught_fast):
    """One taught model for every case (teaching is the costliest step here): debug=fast's, the session's."""
    return f"model.path={taught_fast}"


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, vanilla):
    """Every case on one process, as one `-m` sweep (one launch's imports, not one per case), into one cache: its
    directory, whose `<job>_<method>` runs the two-process runs are compared with. Each two-process run reads the
    same cache (the benchmark; a before-evaluation is keyed by the trainer's devices and strategy, so the first
    two-process case evaluates its own, and the later ones read that)."""
    root = tmp_path_factory.mktemp("one_process")
    env = {**os.environ, "WANDB_MODE": "disabled", "UNLEARN_CACHE": str(root / "cache")}
    sweep = subprocess.run([sys.executable, "train.py", "-m", "debug=fast", f"+ddp_case={','.join(CASES)}",
                            CASE_CONFIGS, vanilla, "trainer=cpu", f"hydra.sweep.dir={root / 'sweep'}"], cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=600)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    return root


@pytest.mark.slow
@pytest.mark.parametrize("method", list(CASES))
def test_one_and_two_processes_write_the_same_results(tmp_path, method, one_process, vanilla, taught_fast):
    one = one_process / "sweep" / f"{list(CASES).index(method)}_{method}"
    assert (one / "metrics.json").is_file(), f"the sweep's {one.name} wrote no metrics.json"
    halved = [o.format(one=one) for o in CASES[method]]
    two = train(tmp_path, f"+ddp_case={method}", CASE_CONFIGS, *halved, vanilla, "trainer=ddp_sim", name="two",
                cache=one_process / "cache")
    assert two.returncode == 0, two.stderr[-3000:]
    m1, m2 = (json.loads((d / "metrics.json").read_text()) for d in (one, tmp_path / "two"))
    numbers = lambda m: {k: v for k, v in m["metrics"].items() if not k.startswith(NOT_NUMBERS)}  # noqa: E731
    _close(numbers(m1), numbers(m2), "metrics")
    assert m1["method"] == m2["method"] == method
    assert m2["environment"].get("world_size") == 2
    assert m1["source_model_resolved"] == m2["source_model_resolved"] == str(Path(taught_fast).resolve())
    _close(m1["artifacts"], m2["artifacts"], "artifacts")
    i1, i2 = (json.loads((d / "items.json").read_text()) for d in (one, tmp_path / "two"))
    _close(i1, i2, "items")
    # rank 0 alone writes the run's files: rank 1 leaves only its log
    assert not (tmp_path / "two" / "wandb").exists()
    log1 = (tmp_path / "two" / "train_ddp_process_1.log").read_text()
    assert "GLOBAL_RANK: 1" in log1
    said = two.stdout + two.stderr + log1
    for warning in NOT_WARNED:
        assert warning not in said, warning
    assert "was made on other weights" not in said  # MMUnlearner's mask reused on the model it was made on
