"""bench/seed_variance.py: the spread over seeds split into the taught model's part and the method's."""

import pytest

from bench.seed_variance import split_spread, table
from unlearn.report import independent_std


def test_split_spread_by_hand():
    values = {(0, 0): 0.1, (0, 1): 0.3, (1, 0): 0.5, (1, 1): 0.7}
    s = split_spread(values)
    assert s["diagonal"] == pytest.approx(0.18 ** 0.5)  # 0.1 and 0.7
    assert s["all"] == pytest.approx((0.2 / 3) ** 0.5)  # mean 0.4, squares 0.09 + 0.01 + 0.01 + 0.09
    assert s["within"] == pytest.approx(0.02 ** 0.5)  # each model: 0.1/0.3 and 0.5/0.7
    assert s["between"] == pytest.approx(0.08 ** 0.5)  # model means 0.2 and 0.6


def test_split_spread_without_enough_runs():
    assert split_spread({(0, 0): 0.5}) == {"diagonal": None, "all": None, "within": None, "between": None}
    only_diagonal = split_spread({(0, 0): 0.2, (1, 1): 0.4})
    assert only_diagonal["within"] is None and only_diagonal["between"] == pytest.approx(only_diagonal["diagonal"])


def _metrics(before: float, after: float, n: int | None = None) -> dict:
    m = {f"{stage}/{split}/{mod}/mc_acc": v for stage, v in (("before", before), ("after", after))
         for split in ("forget", "retain") for mod in ("multimodal", "text")}
    if n is not None:
        m.update({k.replace("/mc_acc", "/n_mc_acc"): n for k in list(m)})
    return m


def test_independent_std_by_hand():
    assert independent_std(0.5, 50) == pytest.approx(0.5 / 50 ** 0.5)  # 0.0707
    assert independent_std(0.9, 100) == pytest.approx(0.03)
    assert independent_std(1.0, 50) == 0.0
    with pytest.raises(ValueError, match="p=1.5"):
        independent_std(1.5, 10)


def test_table_counts_each_vanilla_model_once_and_marks_wide_cells():
    runs = {("ga", t, s): _metrics(1.0 - 0.01 * t, 0.1 * t + 0.01 * s, n=25) for t in (0, 1) for s in (0, 1)}
    lines = table(runs).splitlines()
    vanilla = next(line for line in lines if line.startswith("| vanilla | MM forget"))
    ga = next(line for line in lines if line.startswith("| ga | MM forget"))
    # vanilla: 1.00 and 0.99 over the two models, so its mean is 0.995 whatever the method seeds
    assert "| 0.995 |" in vanilla and vanilla.count("n/a") == 1  # within a model: one value per model
    cells = [c.strip() for c in ga.split("|")[4:8]]
    assert cells[2] == "0.007"  # within a model: two method seeds 0.01 apart -> 0.01 / sqrt(2)
    assert cells[3].endswith("*")  # between models: 0.005 and 0.105 -> std 0.071 > 0.05
    # independent questions at the mean 0.055 (0, 0.01, 0.1, 0.11) over 25 questions: sqrt(0.055 * 0.945 / 25) = 0.0456
    assert ga.rstrip(" |").rsplit("|", 1)[1].strip() == "0.046"


def test_diagonal_summary_by_hand():
    from bench.seed_variance import compare_table, diagonal_summary

    def metrics(before, forget_mm):
        m = _metrics(before, 0.5)
        m["after/forget/multimodal/mc_acc"] = forget_mm
        return m

    runs = {("ga", 0, 0): metrics(0.96, 0.1), ("ga", 1, 1): metrics(1.0, 0.3),
            ("ga", 0, 1): metrics(0.96, 0.9)}  # off the diagonal: not counted
    s = diagonal_summary(runs)
    assert s["models"] == [0, 1] and s["vanilla_min"] == pytest.approx(0.96) and s["cells"] == 4
    # one wide cell (0.1 / 0.3 -> std 0.1414), three of 0: RMS = sqrt(0.02 / 4)
    assert s["wide"] == 1 and s["max"] == pytest.approx(0.02 ** 0.5) and s["rms"] == pytest.approx(0.005 ** 0.5)
    assert compare_table([("now", runs)]).startswith("| setting |")
    assert "| now | 2 (seeds 0, 1) | 0.960 | 1 of 4 | 0.071 | 0.141 |" in compare_table([("now", runs)])


def test_the_page_pairs_methods_on_each_taught_model():
    """Taught models 0.1 apart in how much they forget, KL 0.050, 0.048, 0.046 more than GA on them: each method
    spreads, their difference hardly (method seeds of one taught model averaged into one sample). A difference
    equal on every model has no spread to test and is not starred (unlearn/paired.py)."""
    from bench.seed_variance import paired

    runs = {("ga", t, s): _metrics(1.0, 0.9 - 0.1 * t + 0.001 * s) for t in (0, 1, 2) for s in (0, 1)}
    runs |= {("kl", t, s): _metrics(1.0, 0.85 - 0.098 * t + 0.001 * s) for t in (0, 1, 2) for s in (0, 1)}
    page = paired(runs)
    assert page.count("| ga |  | -0.048 ± 0.002* |") == 4  # forget and retain (_metrics sets both), each modality
    equal = {k: v for k, v in runs.items() if k[0] == "ga"}
    equal |= {("kl", t, s): _metrics(1.0, 0.85 - 0.1 * t + 0.001 * s) for t in (0, 1, 2) for s in (0, 1)}
    assert paired(equal).count("| ga |  | -0.050 ± 0.000 |") == 4
    assert paired({k: v for k, v in runs.items() if k[0] == "ga"}) is None


def test_a_method_of_your_own_is_in_the_tables_after_the_built_in_ones():
    from bench.seed_variance import paired

    runs = {(m, t, t): _metrics(1.0, 0.1 * t + (0.3 if m == "simnpo" else 0.0), n=25)
            for m in ("simnpo", "ga") for t in (0, 1, 2)}
    rows = [cells[1].strip() for cells in (line.split("|") for line in table(runs).splitlines())
            if len(cells) > 2 and cells[2].strip() == "MM forget MC"]
    assert rows == ["vanilla", "ga", "simnpo"]  # simnpo was dropped (only the built-in methods were read)
    matrix = paired(runs)
    assert matrix is not None and "| simnpo |" in matrix
