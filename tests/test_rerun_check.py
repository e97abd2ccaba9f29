"""bench/rerun_check.py's comparison: exact equality per metric, timings left out, the largest difference named."""

import math

from bench.rerun_check import compare


def test_compare_counts_identical_metrics_and_names_the_largest_difference():
    old = {"after/forget/multimodal/mc_acc": 0.9, "after/retain/text/mc_acc": 0.95, "after/x/y/prob": 0.5,
           "time/method_s": 1.0, "after/nan/metric/z": math.nan, "only_old": 1.0, "label": "text"}
    new = {"after/forget/multimodal/mc_acc": 0.9, "after/retain/text/mc_acc": 0.93, "after/x/y/prob": 0.499,
           "time/method_s": 2.0, "after/nan/metric/z": math.nan, "only_new": 1.0, "label": "text"}
    equal, n, worst, key = compare(old, new)
    assert (equal, n, key) == (2, 4, "after/retain/text/mc_acc")
    assert math.isclose(worst, 0.02)


def test_compare_of_a_run_with_itself_is_all_equal():
    m = {"a/b/c/d": 0.25, "e/f/g/h": 1.0}
    assert compare(m, dict(m)) == (2, 2, 0.0, "")
