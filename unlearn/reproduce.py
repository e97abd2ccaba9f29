"""Does a new sweep reproduce a printed results page within the page's own spread?

Why: issue 11 asks that docs/results.md reproduce on another machine within its printed spread. Float
kernels differ between processors, so another machine teaches other vanilla models; what can be promised is
the spread over seeds the page prints, and this is the check a reader runs. Every "mean ± std" cell of the
printed page is compared with the same cell (same section, table, row and column) of a page generated from
the new sweep (`python -m unlearn.frontier --out NEW --report-only --docs NEWDOCS` writes it):

    python -m unlearn.reproduce docs/results.md NEWDOCS/results.md [--out report.md]

A cell reproduces when |new mean - printed mean| <= printed std (the issue's reading). With n seeds on
each side, two sweeps of the same distribution differ by about sigma * sqrt(2 / n) in their means, and the
printed std is itself a 3-seed estimate of sigma, so at 3 seeds about one cell in three lies outside by
chance alone (a t-distribution with 2 degrees of freedom); the report prints the share beside that figure.

That reading ignores the new sweep's own spread and how few seeds stand behind either mean, so the report
also tests each cell: Welch's t-test of the two means from their printed means, sample stds and seed counts.
When both sweeps draw from one distribution about 5 % of cells differ at p < 0.05 by chance; the cells that
still differ after the Benjamini-Hochberg procedure (false discovery rate 0.05) are the ones to look at. The
cells share runs, so they are not independent tests: read the counts as a guide, not as one p-value.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from unlearn.io import write_text

# "0.567 ± 0.042", "+0.153 ± 0.023", "0.060 ± 0.035 † (3/3)", "1.7e-07 ± 2.5e-07", "-0.402 ± 0.004* (2)" (a
# seed-by-seed difference the t interval sets apart from 0); a lone number has no spread
_NUMBER = r"[+-]?\d+(?:\.\d+)?(?:e[+-]?\d+)?"
_CELL = re.compile(rf"^\s*({_NUMBER})(?:\s*±\s*({_NUMBER}))?\*?(?:\s.*)?$")


# how many samples a cell says it rests on: "0.5 ± 0.1 (2 of 3)" (a spread table's cell that 2 of the row's 3
# seeds measured), "+0.150 ± 0.071* (2)" (a seed-by-seed difference over the 2 taught models both methods ran)
_OF = re.compile(r"\((\d+) of \d+\)")
_SHARED = re.compile(r"\((\d+)\)\s*$")


@dataclass(frozen=True)
class Cell:
    mean: float
    std: float | None
    n: int | None = None  # the samples behind the cell where the page says (its own count, or its row's seeds)


def parse_cell(text: str) -> Cell | None:
    """A table cell as (mean, std, the count it states); None for a cell that is not a number (a label, "n/a")."""
    m = _CELL.match(text)
    if not m:
        return None
    count = _OF.search(text) or _SHARED.search(text)
    return Cell(float(m.group(1)), float(m.group(2)) if m.group(2) is not None else None,
                int(count.group(1)) if count else None)


def page_cells(md: str) -> dict[tuple[str, int, str, str], Cell]:
    """{(section, table index in the section, row label, column header): cell} over every markdown table.

    A cell's count (`Cell.n`) is its own where it states one, else its row's `seeds` column where the table has
    one. A seed-by-seed matrix ("row − column") keeps its cells above the diagonal only: the cell below is the
    same difference negated, and counting both would test it twice."""
    cells: dict[tuple[str, int, str, str], Cell] = {}
    section, index, header, in_table, row_index = "", -1, [], False, 0
    for line in md.splitlines():
        if line.startswith("#"):
            section, index, in_table = line.lstrip("#").strip(), -1, False
            continue
        if not line.startswith("|"):
            in_table = False
            continue
        row = [c.strip() for c in line.strip().strip("|").split("|")]
        if not in_table:
            in_table, header, index, row_index = True, row, index + 1, 0
            seeds_at = header.index("seeds") if "seeds" in header else None
            continue
        if all(set(c) <= set("-: ") for c in row):  # the separator line
            continue
        row_index += 1
        # the row's label: its leading cells that are not numbers ("ga", "lr 5e-05" in the swept-settings table)
        # up to the first number or empty cell (a seed-by-seed matrix's diagonal)
        n_label = next((i for i, c in enumerate(row) if i and (parse_cell(c) is not None or not c)), len(row))
        label = " / ".join(row[:n_label])
        seeds = row[seeds_at] if seeds_at is not None and seeds_at < len(row) else ""
        for position, (column, text) in enumerate(zip(header[n_label:], row[n_label:]), start=1):
            if header[0] == "row − column" and position <= row_index:
                continue
            if column != "seeds" and (cell := parse_cell(text)) is not None:
                if cell.n is None and seeds.isdigit():
                    cell = Cell(cell.mean, cell.std, int(seeds))
                cells[(section, index, label, column)] = cell
    return cells


@dataclass(frozen=True)
class Comparison:
    key: tuple[str, int, str, str]
    printed: Cell
    new: Cell

    @property
    def delta(self) -> float:
        return self.new.mean - self.printed.mean

    @property
    def within(self) -> bool:
        return abs(self.delta) <= (self.printed.std or 0.0) + 1e-12


def compare(printed: dict, new: dict) -> tuple[list[Comparison], list[tuple]]:
    """Every printed cell with a spread that the new page also has; and the printed keys it lacks."""
    pairs, missing = [], []
    for key, cell in printed.items():
        if cell.std is None:
            continue
        if key in new:
            pairs.append(Comparison(key, cell, new[key]))
        else:
            missing.append(key)
    return pairs, missing


def chance_outside(n_printed: int, n_new: int) -> float:
    """The share of cells outside ±(printed std) by chance alone when both sweeps draw from one normal
    distribution: P(|mean_a - mean_b| > s_a), s_a the printed SAMPLE std of n_a seeds. The difference is
    N(0, sigma^2 (1/n_a + 1/n_b)) and independent of s_a, so (mean_a - mean_b) / (s_a c), c = sqrt(1/n_a +
    1/n_b), is Student's t with n_a - 1 degrees of freedom, and the share is P(|T| > 1 / c). (Reading s_a as
    sigma itself gives P(|Z| > 1 / c), 22 % at 3 and 3 seeds against 35 %: the note of 2026-12-01 quoted it.)"""
    from scipy.stats import t

    if n_printed < 2 or n_new < 1:
        raise ValueError(f"chance_outside needs >= 2 printed seeds and >= 1 new (got {n_printed}, {n_new})")
    return float(2.0 * t.sf(1.0 / math.sqrt(1.0 / n_printed + 1.0 / n_new), df=n_printed - 1))


def welch_p(a: Cell, b: Cell, n_a: int, n_b: int) -> float:
    """Two-sided p-value of Welch's t-test that two cells' means are equal, from each cell's mean, sample std
    and seed count. With no spread on either side the test is undefined: 1 when the means agree, else NaN
    (untested: a printed 0.000 may be rounding, so a difference there is no evidence at any level)."""
    from scipy.stats import ttest_ind_from_stats

    if n_a < 2 or n_b < 2:
        raise ValueError(f"Welch's t-test needs >= 2 seeds on each side (got {n_a} and {n_b})")
    std_a, std_b = a.std or 0.0, b.std or 0.0
    if std_a == 0.0 and std_b == 0.0:
        return 1.0 if math.isclose(a.mean, b.mean, rel_tol=0.0, abs_tol=1e-12) else math.nan
    return float(ttest_ind_from_stats(a.mean, std_a, n_a, b.mean, std_b, n_b, equal_var=False).pvalue)


def benjamini_hochberg(p_values: Sequence[float], fdr: float = 0.05) -> list[bool]:
    """Which hypotheses the Benjamini-Hochberg step-up procedure rejects at false discovery rate `fdr`: the
    k smallest p-values, k the largest rank with p_(k) <= k * fdr / m. NaN p-values (untested) are left out
    of m and never rejected."""
    order = sorted((i for i in range(len(p_values)) if not math.isnan(p_values[i])), key=lambda i: p_values[i])
    m, k = len(order), 0
    for rank, i in enumerate(order, start=1):
        if p_values[i] <= rank * fdr / m:
            k = rank
    rejected = [False] * len(p_values)
    for i in order[:k]:
        rejected[i] = True
    return rejected


def sample_counts(pair: Comparison, seeds: tuple[int, int]) -> tuple[int, int]:
    """The samples behind each side of a comparison: the cell's own count where its page states one (a cell over
    fewer seeds, a matrix cell over the taught models both methods ran), else the page's seed count."""
    return (pair.printed.n or seeds[0]), (pair.new.n or seeds[1])


def report(pairs: Sequence[Comparison], missing: Sequence[tuple], seeds: tuple[int, int] | None = None) -> str:
    counts = [sample_counts(p, seeds) for p in pairs] if seeds else []
    # a side over one sample has no spread to test against: untested (NaN), as a cell with no spread anywhere
    p_values = [welch_p(p.printed, p.new, *n) if min(n) >= 2 else math.nan
                for p, n in zip(pairs, counts)] if seeds else None
    differ = benjamini_hochberg(p_values) if p_values else None
    by_section: dict[str, list[int]] = {}
    for i, p in enumerate(pairs):
        by_section.setdefault(p.key[0], []).append(i)
    header = "| section | cells | within the printed spread | outside |"
    if p_values:
        header += " differ at p < 0.05 | differ after B-H |"
    lines = [header, "|---|---:|---:|---:|" + ("---:|---:|" if p_values else "")]
    for section, idx in [*by_section.items(), ("all", list(range(len(pairs))))]:
        inside = sum(pairs[i].within for i in idx)
        row = f"| {section} | {len(idx)} | {inside} | {len(idx) - inside} |"
        if p_values and differ is not None:
            row += f" {sum(p_values[i] < 0.05 for i in idx)} | {sum(differ[i] for i in idx)} |"
        lines.append(row)
    notes = ["a cell reproduces when |new mean - printed mean| <= the printed std."]
    if seeds:
        if seeds[0] >= 2:
            notes.append(f"with {seeds[0]} and {seeds[1]} seeds, about {chance_outside(*seeds):.0%} of cells lie "
                         "outside by chance alone when both sweeps draw from one distribution.")
        notes.append("differ: Welch's t-test of the two means (printed means, sample stds and seed counts: a cell's "
                     "own count where its page states one, its row's seeds, else the page's); about "
                     "5% of cells differ at p < 0.05 by chance alone; B-H: the cells that still differ after the "
                     "Benjamini-Hochberg procedure at false discovery rate 0.05. The cells share runs, so the "
                     "counts are a guide, not independent tests.")
    few = sum(min(n) < 2 for n in counts)
    untested = (sum(math.isnan(p) for p in p_values) if p_values else 0) - few
    if untested:
        notes.append(f"{untested} cells have no spread on either side and different means: untested (left out of "
                     "the p < 0.05 and B-H counts).")
    if few:
        notes.append(f"{few} cells rest on one sample on a side: untested (left out of the p < 0.05 and B-H counts).")
    if missing:
        notes.append(f"{len(missing)} printed cells have no counterpart in the new page (first: "
                     f"{' / '.join(map(str, missing[0]))}).")
    out = ["\n".join(lines), "\n".join(f"- {n}" for n in notes)]
    outside = [i for i, p in enumerate(pairs) if not p.within]
    if outside:
        rows = ["| section | row | column | printed | new | difference |" + (" Welch p |" if p_values else ""),
                "|---|---|---|---:|---:|---:|" + ("---:|" if p_values else "")]
        for i in sorted(outside, key=lambda i: -abs(pairs[i].delta)):  # the largest differences first
            p = pairs[i]
            std = f" ± {p.new.std:.3g}" if p.new.std is not None else ""
            row = (f"| {p.key[0]} | {p.key[2]} | {p.key[3]} | {p.printed.mean:.3g} ± {p.printed.std:.3g} | "
                   f"{p.new.mean:.3g}{std} | {p.delta:+.3g} |")
            if p_values and differ is not None:
                row += f" {p_values[i]:.2g}{' (B-H)' if differ[i] else ''} |"
            rows.append(row)
        out.append("Outside the printed spread:\n\n" + "\n".join(rows))
    return "\n\n".join(out) + "\n"


def _seeds(md: str) -> int | None:
    m = re.search(r"over seeds ([\d, ]+)", md)
    return len(m.group(1).replace(" ", "").strip(",").split(",")) if m else None


REPORT_HEADING = "# Does "  # how every report this tool writes begins
def sweep_configuration(md: str) -> set[tuple] | None:
    """What the `python -m unlearn.frontier` commands of a page's sweep block ran, read with the frontier's own
    parser: every run's `--base` overrides, the `--knob`s, and the cost reading (`--budget`, `--cost`,
    `--cost-metric`). Not where or on how many workers it ran, which seeds or methods (a reproduction on other
    taught models, a resumed sweep), nor the grid (a cell is one method at one strength whatever grid holds it).
    None where the page names no sweep command it can read. Two pages whose sweeps differ here compare other
    configurations (until 2026-12-05 compared without a word)."""
    import shlex

    from unlearn.frontier import argument_parser

    block = re.search(r"```bash\n(.*?)```", md, re.S)
    if block is None:
        return None
    out = set()
    for line in block.group(1).replace("\\\n", " ").splitlines():
        if "unlearn.frontier" not in line:
            continue
        try:
            words = shlex.split(line.split("#", 1)[0])
            args, _ = argument_parser().parse_known_args(words[words.index("unlearn.frontier") + 1:])
        except (ValueError, SystemExit):  # a line this parser cannot read: the page's sweep is unknown
            return None
        if args.report_only:
            continue
        out.add((tuple(sorted(args.base)), tuple(sorted(args.knob)), args.budget, args.cost, args.cost_metric))
    return out or None


def report_configuration(md: str) -> frozenset[str] | None:
    """The overrides every run of an `unlearn.report` page was made with (its note under the run table, since the
    fiftieth session), less those that make no setting (seeds, logger, paths: report.NOT_A_SETTING); None where
    the page is not one of unlearn.report's. Why: a report page names no frontier command, so sweep_configuration
    reads nothing from it, and a forget_5 page was compared with a forget_10 one without a word."""
    from unlearn.report import SHARED_NOTE, _not_a_setting

    block = re.search(r"```bash\n(.*?)```", md, re.S)
    if block is None or "unlearn.report" not in block.group(1):
        return None
    line = next((line for line in md.splitlines() if line.startswith(f"- {SHARED_NOTE}")), "")
    return frozenset(o for o in re.findall(r"`([^`]*)`", line) if not _not_a_setting(o.split("=", 1)[0].lstrip("+~")))


def _shown(configuration: set[tuple]) -> str:
    return "; ".join(" ".join([*(f"--base {b}" for b in base), *(f"--knob {k}" for k in knob),
                               f"--budget {budget:g} --cost {cost} --cost-metric {metric}"])
                     for base, knob, budget, cost, metric in sorted(configuration))


def main(argv: Sequence[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("printed", type=Path, help="the printed page (docs/results.md)")
    p.add_argument("new", type=Path, help="the page generated from the new sweep")
    p.add_argument("--out", type=Path, help="also write the report here")
    a = p.parse_args(argv)
    for path in (a.printed, a.new):
        if not path.is_file():
            p.error(f"{path}: no such file")
    if a.out and (a.out.is_dir() or a.out.resolve() in (a.printed.resolve(), a.new.resolve())):
        # until 2026-12-05 `--out docs/results.md` replaced the printed page with the report
        p.error(f"--out {a.out} is {'a directory' if a.out.is_dir() else 'one of the pages compared'}: "
                "give the report its own file")
    if a.out and a.out.is_file() and not a.out.read_text(errors="replace").startswith(REPORT_HEADING):
        # until 2026-12-05 any file was replaced (a run's metrics.json, a page): only an earlier report is
        p.error(f"--out {a.out} exists and is not a report of this tool: give the report its own file")
    printed_md, new_md = a.printed.read_text(), a.new.read_text()
    pairs, missing = compare(page_cells(printed_md), page_cells(new_md))
    if not pairs:
        p.error(f"{a.printed} and {a.new} share no 'mean ± std' cell: are both results pages?")
    n = (_seeds(printed_md), _seeds(new_md))
    text = (f"{REPORT_HEADING}{a.new} reproduce {a.printed}?\n\n"
            + report(pairs, missing, n if None not in n else None))  # type: ignore[arg-type]
    ran = (sweep_configuration(printed_md), sweep_configuration(new_md))
    if None not in ran and ran[0] != ran[1]:
        text += (f"\n- **The two sweeps ran other configurations**: printed `{_shown(ran[0])}`, new "
                 f"`{_shown(ran[1])}` (their runs' --base, --knob and cost reading); the cells compare those, not "
                 "one configuration twice.\n")
    made = (report_configuration(printed_md), report_configuration(new_md))
    if None not in made and made[0] != made[1]:
        shown = [", ".join(f"`{o}`" for o in sorted(m)) or "none" for m in made]
        text += (f"\n- **The two pages' runs were made with other overrides**: printed {shown[0]}, new {shown[1]} "
                 "(what every run of each page shares, less seeds, logger and paths); the cells compare those, not "
                 "one setting twice.\n")
    if a.out:
        write_text(a.out, text)
    print(text)
    return text


if __name__ == "__main__":
    from unlearn.runtime import refusals_as_messages

    refusals_as_messages(main)
