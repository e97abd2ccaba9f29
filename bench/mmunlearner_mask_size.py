"""MMUnlearner's mask size over taught models: a fixed gamma against a fixed fraction, side by side.

Why: under the official rule (a weight is unlearned where F_f / F_p >= gamma = 1) the mask's size is not a
setting but a property of the taught model, and MMUnlearner's forgetting follows it. `mmunlearner.mask_fraction`
fixes the size instead (the largest gamma that selects that fraction). This prints, for each sweep and epoch
count, the mask size and the MC drops over seeds, with the correlation between mask size and image+text
forget drop across the taught models.

    python -m unlearn.frontier --out FIXED --cache CACHE --jobs 2 --seeds 0 1 2 3 4 5 --methods mmunlearner \\
        --base mmunlearner.mask_fraction=0.2
    python -m bench.mmunlearner_mask_size "gamma 1=SWEEP" "fraction 0.2=FIXED"

SWEEP: a frontier sweep dir holding MMUnlearner runs at the default gamma on the same seeds and cache.
Results and reading: docs/frontier_evidence.md ("MMUnlearner's mask size").
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from unlearn.frontier import load_points

CELLS = (("forget", "multimodal", "MM forget"), ("forget", "text", "text forget"),
         ("retain", "multimodal", "MM retain"), ("retain", "text", "text retain"),
         ("untouched", "multimodal", "MM untouched"), ("untouched", "text", "text untouched"))


def spread(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else \
        f"{values[0]:.3f}"


def correlation(xs: list[float], ys: list[float]) -> float | None:
    """Pearson's r; None with fewer than 3 points or no variation (a constant mask size has no correlation)."""
    if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    return statistics.correlation(xs, ys)


def runs(sweep: Path) -> dict[float, list[tuple[float, dict]]]:
    """epochs -> [(mask fraction, {cell: MC drop})] over the sweep's MMUnlearner runs, by seed."""
    out: dict[float, list[tuple[float, dict]]] = {}
    for p in sorted(load_points(sweep), key=lambda p: (p.strength, p.seed)):
        if p.method != "mmunlearner":
            continue
        summary = p.path / "mmunlearner" / "mask_summary.json"
        drops = {name: p.drop(split, mod) for split, mod, name in CELLS}
        if None in drops.values():
            continue
        out.setdefault(p.strength, []).append((json.loads(summary.read_text())["fraction"], drops))
    return out


def table(sweeps: dict[str, Path]) -> str:
    head = ["mask rule", "epochs", "seeds", "mask fraction (range)", *(f"{n} drop" for *_, n in CELLS),
            "r(mask, MM forget drop)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, sweep in sweeps.items():
        by_epochs = runs(sweep)
        if not by_epochs:
            raise ValueError(f"{sweep}: no finished MMUnlearner run with its seed's before/* metrics")
        for epochs, rows in sorted(by_epochs.items()):
            fractions = [f for f, _ in rows]
            r = correlation(fractions, [d["MM forget"] for _, d in rows])
            lines.append("| " + " | ".join([
                name, f"{epochs:g}", str(len(rows)),
                f"{spread(fractions)} ({min(fractions):.2f}-{max(fractions):.2f})",
                *(spread([d[n] for _, d in rows]) for *_, n in CELLS),
                "n/a" if r is None else f"{r:+.2f}"]) + " |")
    return "\n".join(lines) + ("\n\n- MC drop, before - after, mean ± sample std over seeds (one taught model "
                               "each); r: Pearson's correlation over the seeds.")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sweeps", nargs="+", metavar="NAME=DIR", help="frontier sweep dirs with MMUnlearner runs")
    args = parser.parse_args(argv)
    sweeps = {}
    for spec in args.sweeps:
        name, sep, path = spec.partition("=")
        if not sep:
            parser.error(f"{spec!r}: expected NAME=DIR")
        sweeps[name] = Path(path)
    print(table(sweeps))


if __name__ == "__main__":
    main()
