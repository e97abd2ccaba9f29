"""One method's sweep against an untargeted control of it, paired by seed: what the method's targeting adds.

Why: a method's forgetting means little without a control that spends the same budget untargeted. For MANU
the control is `manu.score=random` (as many neurons per tower, drawn at random): both sweeps run the same
alphas on the same taught models (the same `seed`s and cache), so each (alpha, seed) pair differs only in
which neurons were pruned. Prints, per strength, the mean over seeds of the method's and the control's MC
drops and of their per-seed difference, the seeds where the method forgot at least as much (and strictly
more) in both modalities, and a paired t-test of each forget drop's per-seed differences. The pairs of one
taught model across strengths are not independent trials, and 3 seeds leave any test weak.

    python -m unlearn.frontier --out CONTROL --cache CACHE --jobs 2 --methods manu --base manu.score=random
    python -m bench.paired_control --method manu --sweep SWEEP --control CONTROL

Results and reading: docs/frontier_evidence.md ("An untargeted control").
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from unlearn.frontier import load_points

CELLS = (("forget", "multimodal"), ("forget", "text"), ("retain", "multimodal"), ("retain", "text"))


def drops_by_run(points, method: str) -> dict[tuple[float, int], tuple[float, ...]]:
    """(strength, seed) -> MC drop per cell (`Point.drop`; `load_points` gives every run its seed's vanilla
    before/* metrics); runs without them are left out."""
    out = {}
    for p in points:
        drops = tuple(p.drop(split, mod) for split, mod in CELLS)
        if p.method == method and None not in drops:
            out[(p.strength, p.seed)] = drops
    return out


def paired_p(differences: list[float]) -> float | None:
    """Two-sided paired t-test that the mean per-seed difference is 0; None where it is undefined (fewer than
    two seeds, or every difference the same)."""
    from scipy.stats import ttest_1samp

    if len(differences) < 2 or max(differences) - min(differences) < 1e-12:
        return None
    return float(ttest_1samp(differences, 0.0).pvalue)


def paired_table(method_runs: dict, control_runs: dict) -> str:
    shared = sorted(set(method_runs) & set(control_runs))
    if not shared:
        raise ValueError("the two sweeps share no (strength, seed) run")
    names = [f"{'MM' if m == 'multimodal' else 'text'} {s}" for s, m in CELLS]
    lines = ["| strength | seeds | " + " | ".join(f"{n} drop: method / control / paired difference"
                                                  for n in names) + " | forget: method >= control | "
             "forget: method > control | paired t p, MM / text forget |",
             "|---:|---:|" + "---:|" * len(CELLS) + "---:|---:|---:|"]
    for strength in sorted({s for s, _ in shared}):
        seeds = [seed for s, seed in shared if s == strength]
        cells, diffs = [], []
        for i in range(len(CELLS)):
            a = [method_runs[(strength, seed)][i] for seed in seeds]
            b = [control_runs[(strength, seed)][i] for seed in seeds]
            diffs.append([x - y for x, y in zip(a, b)])
            cells.append(f"{statistics.mean(a):.3f} / {statistics.mean(b):.3f} / {statistics.mean(diffs[-1]):+.3f}")
        at_least = sum(all(diffs[i][j] >= -1e-9 for i in (0, 1)) for j in range(len(seeds)))
        more = sum(all(diffs[i][j] > 1e-9 for i in (0, 1)) for j in range(len(seeds)))
        ps = " / ".join("n/a" if (p := paired_p(diffs[i])) is None else f"{p:.2g}" for i in (0, 1))
        lines.append(f"| {strength:g} | {len(seeds)} | " + " | ".join(cells) +
                     f" | {at_least} of {len(seeds)} | {more} of {len(seeds)} | {ps} |")
    return "\n".join(lines) + ("\n\n- MC drop = before - after, mean over seeds; paired difference = method - "
                               "control on the same taught model, mean over seeds; forget columns: seeds where the "
                               "method's forget drop is at least (strictly more than) the control's in both "
                               "modalities; paired t p: two-sided, over the seeds' differences (n/a: all equal).")


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--method", default="manu")
    parser.add_argument("--sweep", required=True, type=Path, help="the method's frontier sweep dir")
    parser.add_argument("--control", required=True, type=Path, help="the control's sweep dir")
    args = parser.parse_args(argv)
    table = paired_table(drops_by_run(load_points(args.sweep), args.method),
                         drops_by_run(load_points(args.control), args.method))
    print(table)
    return table


if __name__ == "__main__":
    main()
