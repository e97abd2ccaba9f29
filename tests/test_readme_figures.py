"""The README's headline figures are docs/results.md's, and the strengths it names are the configs' defaults.

Why: issue 11 asks the README's figures to be regenerated from the frontier's numbers; results.md is written by
`python -m unlearn.frontier --docs`, the README by hand. A regenerated results.md beside an old README, or a default
moved in configs/model/tiny_llava.yaml without the README, would publish two headline tables, and nothing failed.
"""

import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
RESULTS = (ROOT / "docs" / "results.md").read_text()

# README's method names, results.md's setting names (without their strength)
METHODS = {"vanilla": "vanilla", "GA": "ga", "GradDiff": "grad_diff", "KL": "kl", "NPO": "npo", "MANU": "manu",
           "MMUnlearner": "mmunlearner"}
MC_COLUMNS = {"MM forget": "MM forget MC ↓", "MM retain": "MM retain MC ↑", "text forget": "text forget MC ↓",
              "text retain": "text retain MC ↑"}


def table_after(text: str, heading: str) -> list[dict[str, str]]:
    """The first Markdown table after the line holding `heading`, as rows of {column: cell}."""
    lines = text[text.index(heading):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    block = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        block.append([c.strip() for c in line.strip().strip("|").split("|")])
    header, rows = block[0], block[2:]
    return [dict(zip(header, row)) for row in rows]


def readme_method(label: str) -> tuple[str, str]:
    """`GA (lr 5e-5)` -> ("ga", "5e-5"); `vanilla (before unlearning)` -> ("vanilla", "")."""
    name, _, rest = label.partition(" (")
    strength = re.findall(r"[\d.]+(?:e-?\d+)?", rest) if name != "vanilla" else []
    return METHODS[name], strength[0] if strength else ""


def results_setting(label: str) -> tuple[str, str]:
    """`ga (lr 5e-05)` -> ("ga", "5e-05"); `mmunlearner (epochs 3)` -> ("mmunlearner", "3")."""
    name, _, rest = label.partition(" (")
    strength = re.findall(r"[\d.]+(?:e-?\d+)?", rest)
    return name, strength[0] if strength else ""


def test_the_headline_table_is_results_mds():
    readme = {readme_method(r["method at its default strength"]): r
              for r in table_after(README, "## What the embedded default shows")}
    results = {results_setting(r["setting"]): r for r in table_after(RESULTS, "## Each method at its default strength")}
    assert {name for name, _ in readme} == set(METHODS.values()) == {name for name, _ in results}
    by_name = {name: (strength, row) for (name, strength), row in results.items()}
    for (name, strength), row in readme.items():
        theirs, their_row = by_name[name]
        if strength:  # 5e-5 in the README, 5e-05 on the page: one number
            assert float(strength) == float(theirs), name
        for mine, column in MC_COLUMNS.items():
            assert row[mine] == their_row[column], (name, mine)


def test_the_equal_cost_table_is_results_mds():
    readme = table_after(README, "At equal cost, forget MC drop at a retain MC drop of 0.05")
    results = {r["method"]: r for r in table_after(RESULTS, "## At equal cost: the frontier")}
    assert {METHODS[r["method"]] for r in readme} == set(results) == set(METHODS.values()) - {"vanilla"}
    for row in readme:
        theirs = results[METHODS[row["method"]]]
        for mine, column in (("image+text", "MM forget drop @ retain drop 0.05"),
                             ("text-only", "text forget drop @ retain drop 0.05")):
            # the page's dagger says how many seeds (k/n); the README's says only that some did
            assert row[mine] == re.sub(r" \(\d+/\d+\)$", "", theirs[column]), (row["method"], mine)


def test_the_strengths_named_are_the_embedded_defaults():
    model = OmegaConf.load(ROOT / "configs" / "model" / "tiny_llava.yaml")
    epochs = OmegaConf.load(ROOT / "configs" / "method" / "mmunlearner.yaml").mmunlearner.epochs
    defaults = {**{k: float(v) for k, v in model.unlearn_lr.items()}, "manu": float(model.manu_alpha),
                "mmunlearner": float(epochs)}
    readme = [readme_method(r["method at its default strength"])
              for r in table_after(README, "## What the embedded default shows")]
    assert {name: float(strength) for name, strength in readme if strength} == defaults


@pytest.mark.parametrize("label, expected", [("GA (lr 5e-5)", ("ga", "5e-5")),
                                             ("MANU (alpha 20 %)", ("manu", "20")),
                                             ("MMUnlearner (3 epochs)", ("mmunlearner", "3")),
                                             ("vanilla (before unlearning)", ("vanilla", ""))])
def test_readme_labels_read_as_method_and_strength(label, expected):
    assert readme_method(label) == expected


def test_every_mean_and_std_the_readme_quotes_is_in_a_docs_table():
    """The prose's figures too (paired differences, five-seed and organism readings): each `0.402 ± 0.004` the
    README prints is a cell of some table under docs/ (the generated results and frontier pages, the research
    pages' tables), so a page made again without it, or a figure mistyped, fails here."""
    cells = "\n".join(line for page in (ROOT / "docs").rglob("*.md") for line in page.read_text().splitlines()
                      if line.startswith("|"))
    quoted = re.findall(r"\d\.\d{3} ± \d\.\d{3}", README)
    assert len(quoted) > 40  # the headline table's 28 and the prose's
    assert [f for f in quoted if f not in cells] == []
