"""Methods compared seed by seed (unlearn/paired.py), and where the report and the frontier show it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from unlearn.paired import matrix, paired_differences, summarize, t_half_width

T_975_2 = 4.302652729749464  # Student t, 97.5th percentile, 2 degrees of freedom (tables)


def test_differences_pair_by_seed_not_by_position():
    a = {2: 0.9, 0: 0.5, 1: 0.7}  # inserted out of order
    b = {0: 0.4, 1: 0.5, 2: 0.5, 3: 0.1}  # seed 3: only b ran it
    assert paired_differences(a, b) == pytest.approx([0.1, 0.2, 0.4])
    assert paired_differences({(0, 1): 1.0}, {(0, 1): 0.25, (1, 1): 0.0}) == [0.75]  # (teach_seed, seed) keys


def test_t_half_width_by_hand():
    assert t_half_width(1.0, 3) == pytest.approx(T_975_2 / math.sqrt(3), rel=1e-9)  # 2.4841
    with pytest.raises(ValueError, match="n >= 2"):
        t_half_width(1.0, 1)


def test_summarize_by_hand():
    # 0.1, 0.2, 0.1: mean 0.13333, std sqrt(0.00667 / 2) = 0.057735, half width 4.3027 x 0.057735 / sqrt 3 = 0.14343
    mean, std, n, sure = summarize([0.1, 0.2, 0.1])
    assert (mean, std, n) == (pytest.approx(0.4 / 3), pytest.approx(math.sqrt(0.02 / 3 / 2)), 3)
    assert sure is False  # 0.1333 < 0.1434
    # 0.10, 0.12, 0.11: mean 0.11, std 0.01, half width 0.02484: the interval excludes 0
    mean, std, n, sure = summarize([0.10, 0.12, 0.11])
    assert (mean, std, sure) == (pytest.approx(0.11), pytest.approx(0.01), True)
    assert summarize([-0.10, -0.12, -0.11])[3] is True  # either sign
    # the same difference at every seed: no spread, no t interval, untested (whole-question accuracies give equal
    # differences of equal methods often; a star there was chance about 1 pair in 10 at two seeds)
    assert summarize([0.05, 0.05, 0.05])[1:] == (0.0, 3, None)
    assert summarize([0.0, 0.0])[1:] == (0.0, 2, None)
    assert summarize([0.85 - 0.9, 0.75 - 0.8, 0.65 - 0.7])[1:] == (0.0, 3, None)  # equal but for float rounding
    assert matrix({"a": {0: 0.04, 1: 0.02}, "b": {0: 0.02, 1: 0.0}}).splitlines()[2] == "| a |  | +0.020 ± 0.000 |"
    assert summarize([0.3]) == (0.3, None, 1, None)
    with pytest.raises(ValueError, match="no seed shared"):
        summarize([])


def test_the_shared_part_of_the_spread_cancels():
    """A taught model that forgets fast under one method forgets fast under the other: each method's own spread is
    wide, the difference is not."""
    base = {0: 0.2, 1: 0.6, 2: 0.4}
    a = {s: v + 0.1 + 0.01 * s for s, v in base.items()}  # differences 0.10, 0.11, 0.12
    table = matrix({"a": a, "b": base})
    assert "| a |  | +0.110 ± 0.010* |" in table
    assert "| b | -0.110 ± 0.010* |  |" in table
    # equal on every model (but for float rounding): no spread to test, not starred
    assert "| a |  | +0.100 ± 0.000 |" in matrix({"a": {s: v + 0.1 for s, v in base.items()}, "b": base})
    noisy = {0: 0.25, 1: 0.55, 2: 0.45}  # differences 0.05, -0.05, 0.05: mean 0.0167, std 0.0577, not sure
    assert "| noisy |  | +0.017 ± 0.058 |" in matrix({"noisy": noisy, "b": base})


def test_matrix_marks_fewer_seeds_and_bounds():
    a, b = {0: 0.5, 1: 0.6, 2: 0.7}, {0: 0.4, 1: 0.4}
    table = matrix({"a": a, "b": b, "c": {5: 0.1}}, flagged={"b": {1}})
    assert "| a |  | +0.150 ± 0.071 † (2) | n/a |" in table
    assert table.count("n/a") == 4  # c shares no seed with a or b
    assert "| c | n/a | n/a |  |" in table
    # a bound at a seed the other method lacks is not in any difference: no †
    assert "†" not in matrix({"a": a, "b": b}, flagged={"a": {2}})


def test_method_seeds_of_one_taught_model_are_one_sample():
    """Three method seeds on each of three taught models: nine differences, but three taught models. Per model
    0.10, 0.00, 0.05 (± 0.005 over method seeds): over the models 0.050 ± 0.050, whose interval (half width
    2.48 x 0.05 = 0.124) holds 0; the nine read as independent would give 0.050 ± 0.044 on 8 degrees of
    freedom, starred."""
    base, eps = {0: 0.10, 1: 0.0, 2: 0.05}, {0: -0.005, 1: 0.0, 2: 0.005}
    a = {(t, s): 0.5 + base[t] + eps[s] for t in base for s in eps}
    b = {(t, s): 0.5 for t in base for s in eps}
    assert paired_differences(a, b, lambda k: k[0]) == pytest.approx([0.10, 0.0, 0.05])
    assert "| a |  | +0.050 ± 0.050 |" in matrix({"a": a, "b": b}, unit=lambda k: k[0])
    assert "| a |  | +0.050 ± 0.044* |" in matrix({"a": a, "b": b})  # what the units prevent


def _point(method, strength, seed, forget, retain):
    from tests.test_frontier import _mc_and_rouge_point

    return _mc_and_rouge_point(method, strength, seed, forget, retain, retain)


def test_frontier_pairs_each_seeds_reading_at_equal_cost():
    from unlearn.frontier import frontier_table, paired_table

    # seed s: GA reads forget drop 0.2 + 0.2 s at retain drop 0.05, GradDiff 0.1 more on the same seed
    # (each curve: one strength costing 0.1 of retain, so the reading is half its forget drop)
    pts = [_point("ga", 1e-4, s, 2 * (0.2 + 0.2 * s), 0.1) for s in (0, 1, 2)]
    pts += [_point("grad_diff", 1e-4, s, 2 * (0.3 + 0.21 * s), 0.1) for s in (0, 1, 2)]  # 0.10, 0.11, 0.12 more
    assert "| ga | 3 | 0.400 ± 0.200 | 0.400 ± 0.200 |" in frontier_table(pts)
    table = paired_table(pts)
    assert table.count("| ga |  | -0.110 ± 0.010* |") == 2  # both modalities
    assert "| grad_diff | +0.110 ± 0.010* |  |" in table
    # the note gives the page's own star threshold and count of pairs: t(2) / sqrt(3) = 2.48
    assert "(with 3 seeds 2.48 std)" in table and "(1 pair per matrix)" in table
    # a method that never costs 0.05 reads its strongest setting: a bound, marked
    weak = pts + [_point("manu", 5.0, s, 0.01, 0.01) for s in (0, 1, 2)]
    assert "†" in paired_table(weak).split("- row − column")[0]
    assert "(3 pairs per matrix)" in paired_table(weak)
    five = [_point(m, 1e-4, s, 2 * (0.2 + 0.1 * (m == "kl") + 0.2 * s), 0.1) for m in ("ga", "kl") for s in range(5)]
    assert "(with 5 seeds 1.24 std)" in paired_table(five)  # t(4) / sqrt(5) = 2.776 / 2.236
    # a method on 3 of the 5 seeds: its cells use n = 3, so both thresholds are named; one on a single seed
    # tests no pair, so it is not counted
    mixed = five + pts[3:] + [_point("manu", 5.0, 7, 0.2, 0.1)]
    assert "(with 3 seeds 2.48 std, with 5 seeds 1.24 std)" in paired_table(mixed)
    assert "(3 pairs per matrix)" in paired_table(mixed)
    assert paired_table(pts[:1] + pts[3:4]) is None  # one seed: nothing to pair over


def test_pair_counts_are_the_testable_pairs_shared_seeds():
    from unlearn.paired import pair_counts

    readings = {"a": {0: 1.0, 1: 1.0, 2: 1.0}, "b": {0: 0.0, 1: 0.0, 2: 0.0, 3: 0.0}, "c": {1: 0.0, 2: 0.0},
                "d": {9: 0.0}}
    assert sorted(pair_counts(readings)) == [2, 2, 3]  # a-b 3, a-c 2, b-c 2; d shares no seed
    assert pair_counts(readings, unit=lambda k: k // 2) == [2, 2, 2]  # units {0, 1} and {2, 3}: a-c {1} | {2}
    assert pair_counts(readings, unit=lambda k: k // 3) == []  # every shared seed in one unit: nothing to test


def test_report_pairs_runs_of_the_same_taught_model(tmp_path):
    from unlearn.report import Run, group_by_seed, paired_seed_table

    def run(method, teach, seed, forget_after):
        m = {f"{st}/{split}/{mod}/mc_acc": v for mod in ("multimodal", "text")
             for split in ("forget", "retain") for st, v in (("before", 1.0),
                                                               ("after", forget_after if split == "forget" else 0.9))}
        return Run(method, method, [f"method={method}", f"seed={seed}"], m, tmp_path / f"{method}{seed}", seed=seed,
                   teach_seed=teach)

    # listed in another order for each method: pairs are (teach_seed, seed), not positions
    runs = [run("ga", s, s, 0.9 - 0.2 * s) for s in (0, 1, 2)]
    runs += [run("kl", s, s, 0.8 - 0.21 * s) for s in (2, 0, 1)]
    table = paired_seed_table(group_by_seed(runs))
    assert "MM forget MC drop" in table and "text retain MC drop" in table
    assert table.count("| ga |  | -0.110 ± 0.010* |") == 2  # KL forgets 0.10-0.12 more on every taught model
    assert table.count("| ga |  | +0.000 ± 0.000 |") == 2  # retain: the same
    assert paired_seed_table(group_by_seed(runs[:3])) is None  # one setting: nothing to compare
    # method seeds apart from the teaching seeds (bench.seed_variance without --diagonal): a run pairs with the
    # run of the same taught model AND seed, and the method seeds of one taught model average into one sample
    base, eps = {0: 0.10, 1: 0.0, 2: 0.05}, {0: -0.005, 1: 0.0, 2: 0.005}
    grid = [run("ga", t, s, 0.5 + 0.1 * s - 0.2 * t) for t in base for s in eps]
    grid += [run("kl", t, s, 0.5 + 0.1 * s - 0.2 * t - base[t] - eps[s]) for t in base for s in eps]
    assert table_row(paired_seed_table(group_by_seed(grid)), "kl") == "| kl | +0.050 ± 0.050 |  |"


def table_row(table: str, name: str) -> str:
    return next(line for line in table.splitlines() if line.startswith(f"| {name} |"))


def test_frontier_md_and_results_show_the_paired_table(tmp_path):
    import json

    from unlearn.frontier import GRIDS, report, run_dir

    for method, lr, extra in (("ga", 5e-5, 0.0), ("grad_diff", 1e-4, 0.1)):
        for s in (0, 1):
            d = run_dir(tmp_path / "sweep", method, GRIDS["full"][method][0], lr, s)
            d.mkdir(parents=True)
            p = _point(method, lr, s, 2 * (0.2 + 0.2 * s + extra), 0.1)
            (d / "metrics.json").write_text(json.dumps({"metrics": p.metrics, "seed": s}))
    md = report(tmp_path / "sweep", tmp_path / "docs", "cmd")
    for page in (md, Path(tmp_path / "docs" / "results.md")):
        assert "### Seed by seed" in page.read_text()


def test_frontier_pairs_count_a_taught_model_once():
    """A sweep whose seeds share one taught model (`--base teach_seed=0`): three method seeds, one model.
    GradDiff forgets 0.10, 0.11, 0.12 more than GA on it: seed by seed that would be starred (0.110 ± 0.010
    over 3), but it is one sample of one model: one difference, no interval."""
    from dataclasses import replace

    from unlearn.frontier import paired_table, taught_models

    pts = [_point("ga", 1e-4, s, 0.4, 0.1) for s in (0, 1, 2)]
    pts += [_point("grad_diff", 1e-4, s, 0.4 + 2 * (0.10 + 0.01 * s), 0.1) for s in (0, 1, 2)]
    assert "| grad_diff | +0.110 ± 0.010* |  |" in paired_table(pts)  # each seed its own model
    shared = [replace(p, teach_seed=0) for p in pts]
    table = paired_table(shared)
    assert table is None  # one taught model: nothing to pair over
    two = shared + [replace(p, seed=3, teach_seed=3) for p in pts if p.seed == 0]
    table = paired_table(two)  # models 0 (seeds 0-2, mean 0.11) and 3 (0.10): two units
    assert "| grad_diff | +0.105 ± 0.007* |  |" in table and "count once" in table  # t(1) 12.7 x 0.007 / 1.41 = 0.064
    assert "count once" not in paired_table(pts)
    with pytest.raises(ValueError, match="seed 0 started from the model of teach seed 5"):
        taught_models(pts + [replace(pts[0], teach_seed=5)])
    # one checkpoint given as model.path (teach_seed follows seed there, teaching nothing): one model, as above;
    # until 2026-12-07 its seeds were read as taught models and the difference starred
    given = [replace(p, source="/mine/vanilla/model", given_model=True) for p in pts]
    assert set(taught_models(given).values()) == {"/mine/vanilla/model"} and paired_table(given) is None


def test_a_sweep_of_a_given_checkpoint_is_read_as_one_taught_model(tmp_path):
    """load_points reads each run's recorded config: a run given `model.path` is of that one model."""
    from unlearn.frontier import load_points

    for seed in (0, 1):
        d = tmp_path / "ga" / "lr=0.0001" / f"seed{seed}"
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps({"seed": seed, "teach_seed": seed, "source_model": "/m",
                                                    "metrics": {"before/forget/multimodal/mc_acc": 1.0}}))
        (d / "config.json").write_text(json.dumps({"seed": seed, "model": {"path": "/m" if seed else None}}))
    assert [p.given_model for p in sorted(load_points(tmp_path), key=lambda p: p.seed)] == [False, True]


def test_a_difference_that_rounds_to_nothing_shows_no_sign():
    """A mean difference a rounding under zero shows +0.000, as one over it does (a `-0.000` reads as a loss).
    Mutation audit: the cell without its `-0.000` replacement passed every test."""
    table = matrix({"a": {0: 0.5, 1: 0.7}, "b": {0: 0.5001, 1: 0.7}})
    row_a, row_b = table.splitlines()[2:]
    assert row_a == "| a |  | +0.000 ± 0.000 |" and row_b == "| b | +0.000 ± 0.000 |  |"
