"""unlearn.frontier: the interpolation rule on hand-computed curves, the table from a fake sweep dir, and
(slow) a whole frontier at debug=fast size."""

from __future__ import annotations

import json
import os

import pytest

from tests.test_report import parse_table
from unlearn.frontier import Reading, across_seeds, forget_drop_at, load_points, main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_interpolates_on_the_crossing_segment():
    # segment (0.02, 0.1) -> (0.08, 0.4): 0.1 + 0.3 * (0.05 - 0.02) / 0.06 = 0.25
    r = forget_drop_at([(0.02, 0.1), (0.08, 0.4)], 0.05)
    assert r.reached and r.value == pytest.approx(0.25)


def test_first_point_past_the_budget_interpolates_from_the_vanilla_origin():
    assert forget_drop_at([(0.1, 0.6)], 0.05).value == pytest.approx(0.3)  # 0.6 * 0.05 / 0.1


def test_point_exactly_at_the_budget():
    assert forget_drop_at([(0.05, 0.2), (0.09, 0.7)], 0.05) == Reading(pytest.approx(0.2), True)


def test_curve_that_never_reaches_the_budget_reports_its_strongest_point():
    assert forget_drop_at([(0.01, 0.2), (0.03, 0.5)], 0.05) == Reading(0.5, False)


def test_non_monotone_curve_uses_the_first_crossing():
    # the weakest crossing is origin -> (0.06, 0.3): 0.3 * 0.05 / 0.06 = 0.25; the later dip to 0.02 is ignored
    r = forget_drop_at([(0.06, 0.3), (0.02, 0.5), (0.1, 0.9)], 0.05)
    assert r.reached and r.value == pytest.approx(0.25)


def test_retain_that_improves_first():
    # origin -> (-0.01, 0.1) does not cross; (-0.01, 0.1) -> (0.09, 0.5): 0.1 + 0.4 * 0.06 / 0.1 = 0.34
    assert forget_drop_at([(-0.01, 0.1), (0.09, 0.5)], 0.05).value == pytest.approx(0.34)


def test_bad_input():
    with pytest.raises(ValueError, match="empty curve"):
        forget_drop_at([], 0.05)
    with pytest.raises(ValueError, match="budget"):
        forget_drop_at([(0.1, 0.1)], 0.0)


def test_across_seeds_mean_std_and_misses():
    mean, std, missed = across_seeds([Reading(0.2, True), Reading(0.4, True), Reading(0.3, False)])
    assert mean == pytest.approx(0.3) and std == pytest.approx(0.1) and missed == 1


def _fake_run(root, method, knob, value, seed, retain_drop, forget_drop):
    """One metrics.json with the same drops in both modalities (vanilla 1.0 everywhere)."""
    d = root / method / f"{knob}={value}" / f"seed{seed}"
    d.mkdir(parents=True)
    m = {}
    for mod in ("multimodal", "text"):
        m |= {f"before/forget/{mod}/mc_acc": 1.0, f"before/retain/{mod}/mc_acc": 1.0,
              f"after/forget/{mod}/mc_acc": 1.0 - forget_drop, f"after/retain/{mod}/mc_acc": 1.0 - retain_drop}
    (d / "metrics.json").write_text(json.dumps({"method": method, "metrics": m}))


def test_report_only_table_and_plots(tmp_path):
    root = tmp_path / "sweep"
    # ga: seeds 0 and 1 read 0.25 and 0.35 at 0.05 -> 0.300 ± 0.071; manu never reaches the budget in seed 1
    _fake_run(root, "ga", "lr", 1e-4, 0, 0.02, 0.1)
    _fake_run(root, "ga", "lr", 1e-3, 0, 0.08, 0.4)   # seed 0: 0.25
    _fake_run(root, "ga", "lr", 1e-4, 1, 0.10, 0.7)   # seed 1: 0.35 (origin segment)
    _fake_run(root, "ga", "lr", 1e-3, 1, 0.20, 0.9)
    _fake_run(root, "manu", "alpha", 5, 0, 0.10, 0.4)  # seed 0: 0.2
    _fake_run(root, "manu", "alpha", 5, 1, 0.01, 0.6)  # seed 1: not reached, 0.6
    assert len(load_points(root)) == 6
    md = main(["--out", str(root), "--report-only", "--docs", str(tmp_path / "docs")])
    table = parse_table(md.read_text())
    col = "MM forget drop @ retain drop 0.05"
    assert table["ga"][col] == "0.300 ± 0.071" and table["ga"]["seeds"] == "2"
    assert table["manu"][col] == "0.400 ± 0.283 † (1/2)"
    for mod in ("multimodal", "text"):
        assert (tmp_path / "docs" / f"frontier_{mod}.png").read_bytes().startswith(PNG_MAGIC)


def test_report_without_runs_names_the_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="no runs under"):
        main(["--out", str(tmp_path), "--report-only"])


@pytest.mark.slow
def test_frontier_end_to_end_at_fast_size(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    out = tmp_path / "sweep"
    argv = ["--out", str(out), "--grid", "fast", "--seeds", "0", "1", "--base", "debug=fast",
            "--cache", str(tmp_path / "cache")]
    md = main(argv)
    points = load_points(out)
    assert sorted({(p.method, p.seed) for p in points}) == [("ga", 0), ("ga", 1), ("manu", 0), ("manu", 1)]
    assert len(points) == 8
    for seed in (0, 1):  # one vanilla model per seed, evaluated once; every point gets its before/*
        summaries = [json.loads(f.read_text()) for f in out.glob(f"*/*=*/seed{seed}/metrics.json")]
        assert len({s["source_model"] for s in summaries}) == 1
        assert sum(any(k.startswith("before/") for k in s["metrics"]) for s in summaries) == 1
        assert all("before/forget/text/mc_acc" in p.metrics for p in points if p.seed == seed)
    for seed in (0, 1):  # the strength knob reaches the method: more neurons pruned at alpha 30 than at 5
        pruned = {a: json.loads((out / "manu" / f"alpha={a}" / f"seed{seed}" / "metrics.json").read_text())
                  ["artifacts"]["manu"]["pruned"]["total"]["pruned"] for a in (5, 30)}
        assert pruned[30] > pruned[5] > 0
    table = parse_table(md.read_text())
    assert set(table) >= {"ga", "manu"} and table["ga"]["seeds"] == "2"
    mtime = os.path.getmtime(out / "ga" / "lr=0.0001" / "seed0" / "metrics.json")
    main(argv)  # resumable: finished runs are not run again
    assert os.path.getmtime(out / "ga" / "lr=0.0001" / "seed0" / "metrics.json") == mtime

