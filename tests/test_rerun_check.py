"""bench/rerun_check.py: exact equality per metric, timings left out, the largest difference named, metrics only
one run has listed, and the sweep's thread count read from its timing file."""

import json
import math

import pytest

from bench.rerun_check import as_it_ran, compare, sweep_threads


def test_compare_counts_identical_metrics_and_names_the_largest_difference():
    old = {"after/forget/multimodal/mc_acc": 0.9, "after/retain/text/mc_acc": 0.95, "after/x/y/prob": 0.5,
           "time/method_s": 1.0, "after/nan/metric/z": math.nan, "label": "text"}
    new = {"after/forget/multimodal/mc_acc": 0.9, "after/retain/text/mc_acc": 0.93, "after/x/y/prob": 0.499,
           "time/method_s": 2.0, "after/nan/metric/z": math.nan, "label": "text"}
    equal, n, worst, key, one_side = compare(old, new)
    assert (equal, n, key, one_side) == (2, 4, "after/retain/text/mc_acc", [])
    assert math.isclose(worst, 0.02)


def test_compare_lists_metrics_dropped_renamed_or_nulled():
    old = {"a": 1.0, "b": 2.0, "c": 0.5}
    new = {"a": 1.0, "c": None, "d": 3.0}
    assert compare(old, new) == (1, 1, 0.0, "", ["b", "c", "d"])


def test_compare_flags_nan_against_a_number():
    equal, n, worst, key, _ = compare({"a": 1.0, "b": 0.5}, {"a": math.nan, "b": 0.5})
    assert (equal, n, key) == (1, 2, "a") and math.isnan(worst)


def test_compare_of_a_run_with_itself_is_all_equal():
    m = {"a/b/c/d": 0.25, "e/f/g/h": 1.0, "flag": True}
    assert compare(m, dict(m)) == (2, 2, 0.0, "", [])


def test_sweep_threads_follows_the_sweeps_jobs(tmp_path):
    assert sweep_threads(tmp_path) is None  # no timing file: torch's default
    (tmp_path / "sweep_time.json").write_text(json.dumps([{"jobs": 2}, {"jobs": 2}]))
    assert sweep_threads(tmp_path) == 1
    (tmp_path / "sweep_time.json").write_text(json.dumps([{"jobs": 1}]))
    assert sweep_threads(tmp_path) is None
    (tmp_path / "sweep_time.json").write_text(json.dumps([{"jobs": 1}, {"jobs": 2}]))
    with pytest.raises(SystemExit, match="--threads"):
        sweep_threads(tmp_path)
    # from the thirteenth session on the timing says: one thread whatever --jobs
    (tmp_path / "sweep_time.json").write_text(json.dumps([{"jobs": 1, "threads": 1}, {"jobs": 2, "threads": 1}]))
    assert sweep_threads(tmp_path) == 1
    (tmp_path / "sweep_time.json").write_text(json.dumps([{"jobs": 2}, {"jobs": 1, "threads": 1}]))
    assert sweep_threads(tmp_path) == 1
    (tmp_path / "sweep_time.json").write_text(json.dumps([{"jobs": 1}, {"jobs": 1, "threads": 1}]))
    with pytest.raises(SystemExit, match="different thread counts"):
        sweep_threads(tmp_path)


def test_runs_made_before_a_setting_rerun_at_its_old_value():
    old, olds = {"eval": {"batch_size": 64}}, ["eval.share_prompt=false", "eval.shot_order=lookup"]
    assert as_it_ran(["method=ga"], old) == ["method=ga", *olds]
    made_since = {"eval": {"share_prompt": True, "shot_order": "full_set"}}
    assert as_it_ran(["method=ga"], made_since) == ["method=ga"]  # made since: as is
    assert as_it_ran(["method=ga"], {"eval": {"share_prompt": True}}) == ["method=ga", "eval.shot_order=lookup"]
    assert as_it_ran(["method=ga", "eval.share_prompt=true"], old) == ["method=ga", "eval.share_prompt=true",
                                                                        "eval.shot_order=lookup"]
    assert as_it_ran(["method=ga"], None) == ["method=ga", *olds]  # older than config.json
