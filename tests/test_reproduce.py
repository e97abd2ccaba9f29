"""unlearn/reproduce.py: a new results page against a printed one, cell by cell, within the printed spread."""

import math

import pytest

from unlearn.reproduce import Cell, chance_outside, compare, main, page_cells, parse_cell

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
    assert parse_cell("n/a") is None and parse_cell("lr 5e-05") is None and parse_cell("ga (lr 0.0001)") is None


def test_page_cells_keys_by_section_table_row_and_column():
    cells = page_cells(PRINTED)
    assert cells[("Each method at its default strength", 0, "ga (lr 0.0001)", "MM forget MC ↓")] == Cell(0.567, 0.042)
    assert cells[("Each method at its default strength", 1, "vanilla", "MM test MC")] == Cell(0.867, 0.070)
    # rows of the swept-settings table are labelled by method and strength, so the two ga rows stay apart
    assert cells[("Every swept setting", 0, "ga / lr 5e-05", "MM forget drop")] == Cell(0.153, 0.023)
    assert cells[("Every swept setting", 0, "ga / lr 0.0001", "MM forget drop")] == Cell(0.433, 0.042)
    assert ("Each method at its default strength", 0, "ga (lr 0.0001)", "text forget MC ↓") not in cells  # n/a


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
    # 3 and 3 seeds: the difference of means has sd sigma * sqrt(2/3); P(|N(0,1)| > sqrt(1.5)) = 0.2207
    assert chance_outside(3, 3) == pytest.approx(math.erfc(math.sqrt(1.5) / math.sqrt(2)))
    assert chance_outside(3, 3) == pytest.approx(0.2207, abs=1e-4)
    assert chance_outside(100, 100) < 1e-10


def test_cli_reports_and_names_the_cells_outside(tmp_path, capsys):
    printed, new = tmp_path / "printed.md", tmp_path / "new.md"
    printed.write_text(PRINTED)
    new.write_text(PRINTED.replace("Every method over seeds 0, 1, 2", "Every method over seeds 3, 4, 5")
                   .replace("0.973 ± 0.023", "0.940 ± 0.010"))
    text = main([str(printed), str(new), "--out", str(tmp_path / "r.md")])
    assert "| all | 7 | 6 | 1 |" in text
    assert "| Each method at its default strength | vanilla | text forget MC ↓ | 0.973 ± 0.023 | 0.94 ± 0.01 | -0.033 |" in text
    assert "with 3 and 3 seeds, about 22% of cells" in text
    assert (tmp_path / "r.md").read_text() == text
    with pytest.raises(SystemExit):
        main([str(printed), str(tmp_path / "nowhere.md")])
    assert "nowhere.md: no such file" in capsys.readouterr().err
