"""unlearn/reproduce.py: a new results page against a printed one, cell by cell, within the printed spread."""

import math

import pytest
import torch

from unlearn.reproduce import (Cell, benjamini_hochberg, chance_outside, compare, main, page_cells, parse_cell,
                               welch_p)

PRINTED = """# Unlearning results

Every method over seeds 0, 1, 2, from one sweep.

## Each method at its default strength

| setting | seeds | MM forget MC ↓ | text forget MC ↓ |
|---|---:|---:|---:|
| vanilla | 3 | 1.000 ± 0.000 | 0.973 ± 0.023 |
| ga (lr 0.0001) | 3 | 0.567 ± 0.042 | n/a |

| setting | seeds | MM test MC |
|---|---:|---:|
| vanilla | 3 | 0.867 ± 0.070 |

## At equal cost: the frontier

| method | seeds | MM forget drop @ retain drop 0.05 |
|---|---:|---:|
| manu | 3 | 0.060 ± 0.035 † (3/3) |

### Seed by seed

| row − column | ga | grad_diff |
|---|---:|---:|
| ga |  | -0.402 ± 0.004* |
| grad_diff | +0.402 ± 0.004* |  |

## Every swept setting

| method | strength | seeds | MM forget drop |
|---|---:|---:|---:|
| ga | lr 5e-05 | 3 | +0.153 ± 0.023 |
| ga | lr 0.0001 | 3 | +0.433 ± 0.042 |
"""


def test_parse_cell():
    assert parse_cell("0.567 ± 0.042") == Cell(0.567, 0.042)
    assert parse_cell("+0.153 ± 0.023") == Cell(0.153, 0.023)
    assert parse_cell("0.060 ± 0.035 † (3/3)") == Cell(0.060, 0.035)
    assert parse_cell("1.7e-07 ± 2.5e-07") == Cell(1.7e-07, 2.5e-07)
    assert parse_cell("-0.009 ± 0.007") == Cell(-0.009, 0.007)
    assert parse_cell("3") == Cell(3.0, None)
    assert parse_cell("-0.402 ± 0.004*") == Cell(-0.402, 0.004)  # * the paired t interval excludes 0
    assert parse_cell("+0.150 ± 0.071* † (2)") == Cell(0.150, 0.071, 2)  # a difference over 2 taught models
    assert parse_cell("0.500 ± 0.100 (2 of 3)") == Cell(0.5, 0.1, 2)  # 2 of the row's 3 seeds measured it
    assert parse_cell("0.060 ± 0.035 † (1/3)") == Cell(0.060, 0.035)  # 1 of 3 seeds a bound: no count of its own
    assert parse_cell("n/a") is None and parse_cell("lr 5e-05") is None and parse_cell("ga (lr 0.0001)") is None


def test_page_cells_keys_by_section_table_row_and_column():
    cells = page_cells(PRINTED)
    # a table with a seeds column gives each cell its row's count
    assert cells[("Each method at its default strength", 0, "ga (lr 0.0001)", "MM forget MC ↓")] == \
        Cell(0.567, 0.042, 3)
    assert cells[("Each method at its default strength", 1, "vanilla", "MM test MC")] == Cell(0.867, 0.070, 3)
    # rows of the swept-settings table are labelled by method and strength, so the two ga rows stay apart
    assert cells[("Every swept setting", 0, "ga / lr 5e-05", "MM forget drop")] == Cell(0.153, 0.023, 3)
    assert cells[("Every swept setting", 0, "ga / lr 0.0001", "MM forget drop")] == Cell(0.433, 0.042, 3)
    assert ("Each method at its default strength", 0, "ga (lr 0.0001)", "text forget MC ↓") not in cells  # n/a
    # a seed-by-seed matrix: the empty diagonal ends the row's label, so the columns stay in place
    assert cells[("Seed by seed", 0, "ga", "grad_diff")] == Cell(-0.402, 0.004)
    # below the diagonal the same difference negated: kept once, so that it is tested once
    assert ("Seed by seed", 0, "grad_diff", "ga") not in cells
    assert not any(k[0] == "Seed by seed" and k[3] in ("ga", "grad_diff") and k[2] == k[3] for k in cells)


def test_compare_by_hand():
    new = PRINTED.replace("0.567 ± 0.042", "0.600 ± 0.050").replace("0.973 ± 0.023", "0.940 ± 0.010") \
        .replace("+0.433 ± 0.042", "+0.475 ± 0.030").replace("| manu | 3 | 0.060 ± 0.035 † (3/3) |\n", "")
    pairs, missing = compare(page_cells(PRINTED), page_cells(new))
    by = {p.key[2:]: p for p in pairs}
    assert by[("ga (lr 0.0001)", "MM forget MC ↓")].within  # 0.033 <= 0.042
    assert not by[("vanilla", "text forget MC ↓")].within  # 0.033 > 0.023
    assert by[("vanilla", "text forget MC ↓")].delta == pytest.approx(-0.033)
    assert by[("ga / lr 0.0001", "MM forget drop")].within  # 0.042 <= 0.042: the edge counts as within
    assert by[("vanilla", "MM forget MC ↓")].within  # printed std 0 and the same mean
    assert [k[2] for k in missing] == ["manu"]


def test_chance_outside():
    # 3 and 3 seeds: (mean_a - mean_b) / (s_a sqrt(2/3)) is t with 2 df, where P(|T| > t) = 1 - t / sqrt(2 + t^2);
    # t = sqrt(1.5): 1 - 1.2247 / sqrt(3.5) = 0.3453 (the normal reading, 0.2207, ignored that s_a is an estimate)
    assert chance_outside(3, 3) == pytest.approx(1 - math.sqrt(1.5) / math.sqrt(3.5))
    assert chance_outside(3, 3) == pytest.approx(0.3453, abs=1e-4)
    # many printed seeds: the normal reading, P(|Z| > 1 / sqrt(1/200 + 1/3)) = P(|Z| > 1.7179) = 0.0858
    assert chance_outside(200, 3) == pytest.approx(math.erfc(1 / math.sqrt(1 / 200 + 1 / 3) / math.sqrt(2)), abs=2e-3)
    with pytest.raises(ValueError, match="chance_outside"):
        chance_outside(1, 3)


def test_chance_outside_by_simulation():
    """The share a simulation of two 3-seed sweeps from one normal distribution puts outside ±s_a."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(200_000, 3, generator=g), torch.randn(200_000, 3, generator=g)
    outside = ((a.mean(1) - b.mean(1)).abs() > a.std(1)).double().mean().item()
    assert outside == pytest.approx(chance_outside(3, 3), abs=0.005)


def test_welch_p_by_hand():
    # n = 2 and 2, equal stds: t = 1 / sqrt(1/2 + 1/2) = 1 on df = 2, where P(|T| > t) = 1 - t / sqrt(2 + t^2)
    assert welch_p(Cell(0.0, 1.0), Cell(1.0, 1.0), 2, 2) == pytest.approx(1 - 1 / math.sqrt(3))
    # one side without spread: df = n_a - 1 = 2, t = 0.2 / sqrt(0.01 / 3)
    t = 0.2 / math.sqrt(0.01 / 3)
    assert welch_p(Cell(0.5, 0.1), Cell(0.7, 0.0), 3, 3) == pytest.approx(1 - t / math.sqrt(2 + t * t))
    assert welch_p(Cell(0.5, 0.1), Cell(0.5, 0.3), 3, 5) == pytest.approx(1.0)  # equal means
    assert welch_p(Cell(1.0, 0.0), Cell(1.0, 0.0), 3, 3) == 1.0  # no spread anywhere: agree or not
    assert math.isnan(welch_p(Cell(1.0, 0.0), Cell(0.98, 0.0), 3, 3))  # untested: 0.000 may be rounding
    with pytest.raises(ValueError, match=">= 2 seeds"):
        welch_p(Cell(0.5, 0.1), Cell(0.6, 0.1), 1, 3)


def test_benjamini_hochberg_by_hand():
    # m = 4, thresholds k * 0.05 / 4 = 0.0125, 0.025, 0.0375, 0.05 against the sorted p-values
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.20]) == [True, False, False, False]
    assert benjamini_hochberg([0.04, 0.01, 0.03, 0.02]) == [True, True, True, True]  # step-up: 0.04 <= 0.05
    assert benjamini_hochberg([0.5, 0.001]) == [False, True]
    assert benjamini_hochberg([]) == []
    # an untested cell (NaN) is neither rejected nor counted in m: m = 2, thresholds 0.025 and 0.05
    assert benjamini_hochberg([0.03, math.nan, 0.04]) == [True, False, True]


def test_cli_reports_and_names_the_cells_outside(tmp_path, capsys):
    printed, new = tmp_path / "printed.md", tmp_path / "new.md"
    printed.write_text(PRINTED)
    new.write_text(PRINTED.replace("Every method over seeds 0, 1, 2", "Every method over seeds 3, 4, 5")
                   .replace("0.973 ± 0.023", "0.940 ± 0.010"))
    text = main([str(printed), str(new), "--out", str(tmp_path / "r.md")])
    assert "| all | 8 | 7 | 1 | 0 | 0 |" in text  # the one cell outside does not differ at p < 0.05 at 3 seeds
    p = welch_p(Cell(0.973, 0.023), Cell(0.940, 0.010), 3, 3)
    assert 0.05 < p < 0.5
    assert ("| Each method at its default strength | vanilla | text forget MC ↓ | 0.973 ± 0.023 | 0.94 ± 0.01 | "
            f"-0.033 | {p:.2g} |") in text
    assert "with 3 and 3 seeds, about 35% of cells" in text
    assert (tmp_path / "r.md").read_text() == text
    with pytest.raises(SystemExit):
        main([str(printed), str(tmp_path / "nowhere.md")])
    assert "nowhere.md: no such file" in capsys.readouterr().err
    for out in (printed, new, tmp_path):  # the report never replaces a page it compares, nor takes a directory
        with pytest.raises(SystemExit):
            main([str(printed), str(new), "--out", str(out)])
        assert "give the report its own file" in capsys.readouterr().err
    assert printed.read_text() == PRINTED
    main([str(printed), str(new), "--out", str(tmp_path / "r.md")])  # an earlier report is replaced
    other = tmp_path / "metrics.json"  # any other file is not (until 2026-12-05 it was)
    other.write_text('{"metrics": {}}')
    with pytest.raises(SystemExit):
        main([str(printed), str(new), "--out", str(other)])
    assert "exists and is not a report of this tool" in capsys.readouterr().err
    assert other.read_text() == '{"metrics": {}}'


def test_a_cells_own_count_sets_its_test_and_one_seed_is_untested(tmp_path):
    """Welch's test reads each cell's own count: a matrix cell over 2 taught models (t with fewer degrees of
    freedom: a larger p) and a row of one seed (untested, where the page-wide count would have tested it)."""
    from unlearn.reproduce import Comparison, report

    by_two = Comparison(("s", 0, "ga", "kl"), Cell(0.10, 0.02, 2), Cell(0.20, 0.02, 2))
    by_page = Comparison(("s", 0, "ga", "kl"), Cell(0.10, 0.02), Cell(0.20, 0.02))
    p_two, p_page = welch_p(Cell(0.10, 0.02), Cell(0.20, 0.02), 2, 2), welch_p(Cell(0.10, 0.02), Cell(0.20, 0.02), 5, 5)
    assert p_two > p_page
    assert f"| +0.1 | {p_two:.2g}" in report([by_two], [], (5, 5))
    assert f"| +0.1 | {p_page:.2g}" in report([by_page], [], (5, 5))
    one = Comparison(("s", 0, "ga", "MM"), Cell(0.5, 0.1, 3), Cell(0.9, 0.0, 1))
    text = report([one], [], (3, 3))
    assert "1 cells rest on one sample on a side: untested" in text and "| all | 1 | 0 | 1 | 0 | 0 |" in text
    # a new page over one seed: compared within the printed spread, no Welch test, no crash
    printed, new = tmp_path / "printed.md", tmp_path / "new.md"
    printed.write_text(PRINTED)
    new.write_text(PRINTED.replace("over seeds 0, 1, 2", "over seeds 0,").replace("| 3 |", "| 1 |"))
    text = main([str(printed), str(new)])
    assert "rest on one sample on a side: untested" in text and "with 3 and 1 seeds" in text


def test_pages_of_two_configurations_are_said_to_be(tmp_path):
    """A page of the fast grid under debug=fast was compared with results.md's full one without a word (until
    2026-12-05); where, on how many workers, which seeds or methods and which grid a sweep ran is not its
    configuration (other taught models, a resumed sweep, a cell of one method at one strength)."""
    from unlearn.reproduce import sweep_configuration

    def page(*commands):
        block = "\n".join(f"{c}  # 108 runs" for c in commands)
        return PRINTED.replace("from one sweep.", f"from one sweep.\n\n```bash\n{block}\n```")

    full = "python -m unlearn.frontier --out /a/sweep --cache /a/cache --jobs 2 --docs /a/docs"
    assert sweep_configuration(page(full)) == {((), (), 0.05, "retain", "mc_acc")}
    assert sweep_configuration(PRINTED) is None
    assert sweep_configuration(page("python -m unlearn.frontier --out /a \\\n    --jobs 2")) is not None  # continued
    printed, same, other = tmp_path / "p.md", tmp_path / "s.md", tmp_path / "o.md"
    printed.write_text(page(full))
    same.write_text(page("python -m unlearn.frontier --out /b --cache /c --jobs 16 --seeds 3 4 5 --grid full",
                         "python -m unlearn.frontier --out /b --methods kl --grid wide"))
    other.write_text(page(full + " --grid fast --base debug=fast"))
    assert "ran other configurations" not in main([str(printed), str(same)])
    said = main([str(printed), str(other)])
    assert "**The two sweeps ran other configurations**" in said and "new `--base debug=fast --budget 0.05" in said


def test_report_pages_of_other_shared_overrides_are_said_to_be(tmp_path):
    """unlearn.report pages name no frontier command, so a forget_5 page was compared with a forget_10 one as one
    setting twice (until the fiftieth session); the overrides each page's runs share say it, less the seeds and
    the logger, which make no setting."""
    def page(note):
        block = "```bash\npython -m unlearn.report /runs/sweep --out /runs/report\n```\n\n"
        return PRINTED.replace("from one sweep.", f"from one sweep.\n\n{block}{note}")

    five, ten, bare = tmp_path / "five.md", tmp_path / "ten.md", tmp_path / "bare.md"
    five.write_text(page("- every run was made with `data.forget_split=forget_5`, `logger=none` (left out)\n"))
    ten.write_text(page("- every run was made with `data.forget_split=forget_10`, `seed=3` (left out)\n"))
    bare.write_text(page(""))
    said = main([str(five), str(ten)])
    assert "**The two pages' runs were made with other overrides**: printed `data.forget_split=forget_5`, new " \
           "`data.forget_split=forget_10`" in said
    assert "other overrides" not in main([str(five), str(five)])
    assert "new none" in main([str(five), str(bare)])


def test_a_cells_own_count_outranks_its_rows_seeds_and_a_lone_number_is_not_compared():
    """'(2 of 3)' in a table with a seeds column: the cell's 2, not the row's 3; a cell with no spread is neither
    compared nor missing (its printed std would be None in the report's rows)."""
    page = "## s\n\n| setting | seeds | MM |\n|---|---:|---:|\n| ga | 3 | 0.500 ± 0.100 (2 of 3) |\n| kl | 3 | 0.7 |\n"
    cells = page_cells(page)
    assert cells[("s", 0, "ga", "MM")] == Cell(0.5, 0.1, 2)
    assert cells[("s", 0, "kl", "MM")] == Cell(0.7, None, 3)
    pairs, missing = compare(cells, {("s", 0, "ga", "MM"): Cell(0.6, 0.1)})
    assert [p.key[2] for p in pairs] == ["ga"] and missing == []


def test_the_cells_outside_come_largest_difference_first_and_each_untested_kind_is_counted_once():
    from unlearn.reproduce import Comparison, report

    def pair(row, printed, new):
        return Comparison(("s", 0, row, "MM"), printed, new)

    pairs = [pair("small", Cell(0.5, 0.01), Cell(0.6, 0.01)),  # +0.1
             pair("large", Cell(0.5, 0.01), Cell(0.9, 0.01)),  # +0.4
             pair("one", Cell(0.5, 0.1, 3), Cell(0.8, 0.0, 1)),  # +0.3, one seed on the new side
             pair("flat", Cell(0.5, 0.0), Cell(0.7, 0.0))]  # +0.2, no spread on either side
    text = report(pairs, [], (3, 3))
    assert [row.split(" | ")[1] for row in text.split("Outside the printed spread:")[1].splitlines()
            if row.startswith("| s |")] == ["large", "one", "flat", "small"]
    assert "- 1 cells have no spread on either side and different means: untested" in text
    assert "- 1 cells rest on one sample on a side: untested" in text


def test_a_report_only_line_is_no_run_and_an_unreadable_line_leaves_the_sweep_unknown():
    from unlearn.reproduce import sweep_configuration

    def page(*commands):
        return PRINTED.replace("from one sweep.", "from one sweep.\n\n```bash\n" + "\n".join(commands) + "\n```")

    fast = "python -m unlearn.frontier --out /a --base debug=fast"
    assert sweep_configuration(page(fast, "python -m unlearn.frontier --out /a --report-only --docs /d")) == \
        {(("debug=fast",), (), 0.05, "retain", "mc_acc")}
    assert sweep_configuration(page(fast, "python -m unlearn.frontier --out /a --budget many")) is None
