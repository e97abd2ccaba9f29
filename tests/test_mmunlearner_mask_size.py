"""bench/mmunlearner_mask_size.py: mask size against forgetting over taught models, by hand."""

import json

import pytest

from bench.mmunlearner_mask_size import correlation, table

SPLITS = ("forget", "retain", "untouched")


def write_run(sweep, seed, fraction, forget_mm_after):
    d = sweep / "mmunlearner" / "epochs=3" / f"seed{seed}"
    (d / "mmunlearner").mkdir(parents=True)
    metrics = {f"{stage}/{s}/{m}/mc_acc": 1.0 for stage in ("before", "after") for s in SPLITS
               for m in ("multimodal", "text")}
    metrics["after/forget/multimodal/mc_acc"] = forget_mm_after
    (d / "metrics.json").write_text(json.dumps({"metrics": metrics}))
    (d / "mmunlearner" / "mask_summary.json").write_text(json.dumps({"fraction": fraction}))


def test_mask_size_table_by_hand(tmp_path):
    sweep = tmp_path / "sweep"
    for seed, fraction, after in ((0, 0.1, 0.9), (1, 0.2, 0.8), (2, 0.3, 0.6)):
        write_run(sweep, seed, fraction, after)
    row = table({"gamma 1": sweep}).splitlines()[2]
    # MM forget drops 0.1, 0.2, 0.4: mean 0.233, sample std sqrt(0.04667 / 2) = 0.153; mask 0.2 ± 0.1;
    # r = 0.03 / (sqrt(0.02) sqrt(0.04667)) = 0.98; every other cell unchanged
    assert row == ("| gamma 1 | 3 | 3 | 0.200 ± 0.100 (0.10-0.30) | 0.233 ± 0.153 | "
                   + "0.000 ± 0.000 | " * 5 + "+0.98 |")


def test_correlation_needs_variation_and_three_points():
    assert correlation([0.2, 0.2, 0.2], [0.1, 0.3, 0.2]) is None  # a fixed mask size
    assert correlation([0.1, 0.2], [0.1, 0.2]) is None
    assert correlation([0.1, 0.2, 0.3], [0.3, 0.2, 0.1]) == pytest.approx(-1.0)


def test_a_dir_without_runs_is_named(tmp_path):
    with pytest.raises(ValueError, match="no finished MMUnlearner run"):
        table({"x": tmp_path})
