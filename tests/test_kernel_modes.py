"""bench/kernel_modes.py: one machine's kernel mode trains the same bits twice, and the comparison reads digests."""

import pytest

from bench.kernel_modes import MODES, compare, run_modes


def _result(proc, **digests):
    return {"processor": proc, "modes": {m: {"weights": w, "logits": w[::-1]} for m, w in digests.items()}}


def test_compare_names_the_modes_whose_digests_agree():
    a = _result("A", default="aa01", portable="bb02")
    b = _result("B", default="aa09", portable="bb02")
    assert compare(a, b) == {"default": False, "portable": True}


@pytest.mark.slow
def test_a_mode_is_deterministic_on_one_machine_and_the_portable_one_takes_other_kernels():
    first, second = run_modes(2, ("default", "portable")), run_modes(2, ("default", "portable"))
    assert all(first["modes"][m] | {"seconds": 0} == second["modes"][m] | {"seconds": 0} for m in first["modes"])
    assert first["modes"]["portable"]["capability"] == "DEFAULT"  # ATEN_CPU_CAPABILITY reached the child
    assert set(MODES) == {"default", "avx2", "portable"}
