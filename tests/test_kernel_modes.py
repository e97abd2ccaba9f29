"""bench/kernel_modes.py: one machine's kernel mode trains the same bits twice, and the comparison reads digests."""

import pytest

from bench.kernel_modes import MODES, chosen, compare, run_modes


def _result(proc, **digests):
    return {"processor": proc, "modes": {m: {"weights": w, "logits": w[::-1]} for m, w in digests.items()}}


def test_compare_names_the_modes_whose_digests_agree():
    a = _result("A", default="aa01", portable="bb02")
    b = _result("B", default="aa09", portable="bb02")
    assert compare(a, b) == {"default": False, "portable": True}


def test_chosen_reads_the_libraries_verbose_lines():
    out = ("MKL_VERBOSE SGEMM(N,N,256,64,128,0x1,0x2,256) 449.43us CNR:COMPATIBLE Dyn:1\n"
           "onednn_verbose,v1,info,cpu,isa:Intel SSE4.1\n{}")
    assert chosen(out) == {"mkl_cnr": "COMPATIBLE", "onednn_isa": "Intel SSE4.1"}
    assert chosen("{}") == {"mkl_cnr": None, "onednn_isa": None}


@pytest.mark.slow
def test_a_mode_is_deterministic_on_one_machine_and_the_portable_one_takes_other_kernels():
    # the portable mode only, twice (two child processes; the default mode too cost 12 s more of the suite)
    first, second = run_modes(2, ("portable",)), run_modes(2, ("portable",))
    assert first["modes"].keys() == {"portable"}
    assert first["modes"]["portable"] | {"seconds": 0} == second["modes"]["portable"] | {"seconds": 0}
    portable = first["modes"]["portable"]
    # each library took the path the mode names: ATEN_CPU_CAPABILITY, MKL_CBWR and ONEDNN_MAX_CPU_ISA reached it
    assert (portable["capability"], portable["mkl_cnr"], portable["onednn_isa"]) == ("DEFAULT", "COMPATIBLE",
                                                                                     "Intel SSE4.1")
    assert set(MODES) == {"default", "avx2", "portable"}
