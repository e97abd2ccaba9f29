"""bench/paired_control.py: a method against its untargeted control, paired by seed, by hand."""

import pytest

from bench.paired_control import drops_by_run, paired_table
from unlearn.frontier import Point

BEFORE = {f"before/{s}/{m}/mc_acc": 1.0 for s in ("forget", "retain") for m in ("multimodal", "text")}


def run(strength, seed, forget_mm, forget_text, retain=0.98, before=False):
    after = {"after/forget/multimodal/mc_acc": forget_mm, "after/forget/text/mc_acc": forget_text,
             "after/retain/multimodal/mc_acc": retain, "after/retain/text/mc_acc": retain}
    return Point("manu", strength, seed, {**(BEFORE if before else {}), **after})


def test_paired_differences_by_hand():
    # seed 0 evaluates its vanilla model in its first run; seed 1's vanilla is read from its own first run
    method = [run(20, 0, 0.90, 0.80, before=True), run(20, 1, 0.70, 0.90, before=True)]
    control = [run(20, 0, 0.95, 0.90, before=True), run(20, 1, 0.90, 0.85, before=True), run(30, 0, 0.9, 0.9)]
    m, c = drops_by_run(method, "manu"), drops_by_run(control, "manu")
    assert m[(20, 0)] == pytest.approx((0.10, 0.20, 0.02, 0.02))
    table = paired_table(m, c)
    # MM forget: method (0.10 + 0.30) / 2 = 0.200, control (0.05 + 0.10) / 2 = 0.075, difference +0.125;
    # text: method (0.20 + 0.10) / 2 = 0.150, control (0.10 + 0.15) / 2 = 0.125, difference +0.025;
    # seed 1 forgets less text than its control (0.10 < 0.15): 1 of 2 seeds at least as much in both
    assert "| 20 | 2 | 0.200 / 0.075 / +0.125 | 0.150 / 0.125 / +0.025 |" in table
    # paired differences: MM +0.05, +0.20 (mean 0.125, sample sd 0.10607, t = 0.125 / (0.10607 / sqrt 2) = 1.6667
    # on 1 df: p = 1 - 2 atan(1.6667) / pi = 0.3440); text +0.10, -0.05 (t = 0.025 / 0.075 = 0.3333: p = 0.7952)
    assert table.splitlines()[2].endswith("| 1 of 2 | 1 of 2 | 0.34 / 0.8 |")
    assert "| 30 |" not in table  # only strengths both sweeps ran
    with pytest.raises(ValueError, match="share no"):
        paired_table(m, {(5, 0): (0.0, 0.0, 0.0, 0.0)})


def test_paired_p_is_undefined_without_spread():
    from bench.paired_control import paired_p

    assert paired_p([0.0, 0.0, 0.0]) is None and paired_p([0.1]) is None
    assert paired_p([0.1, 0.3]) == pytest.approx(1 - 2 * __import__("math").atan(2.0) / __import__("math").pi)
