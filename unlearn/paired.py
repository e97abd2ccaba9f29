"""Methods compared seed by seed: the difference between two methods on the same taught model.

Over seeds most of a cell's spread is the taught model's (docs/seed_variance.md): a model that forgets fast
under one method forgets fast under the others. Each seed teaches one vanilla model that every method starts
from, so the difference between two methods at one seed cancels that shared part, and its spread over seeds
says how surely one method beats the other; two means ± their own stds cannot say it.
"""

from __future__ import annotations

import math
from typing import Callable, Hashable, Mapping, Sequence

LEVEL = 0.95  # the paired t interval's coverage


def paired_differences(a: Mapping[Hashable, float], b: Mapping[Hashable, float],
                       unit: Callable[[Hashable], Hashable] | None = None) -> list[float]:
    """a[k] - b[k] for every seed key both have, in key order; with `unit`, averaged within each unit(k) first,
    one difference per unit: runs of one taught model under several method seeds are not independent samples
    of what the taught model gives, so a t interval over them would be too narrow (n counts taught models)."""
    keys = sorted(a.keys() & b.keys(), key=repr)
    if unit is None:
        return [a[k] - b[k] for k in keys]
    by_unit: dict[Hashable, list[float]] = {}
    for k in keys:
        by_unit.setdefault(unit(k), []).append(a[k] - b[k])
    return [sum(v) / len(v) for _, v in sorted(by_unit.items(), key=lambda item: repr(item[0]))]


def comparable(readings: Mapping[str, Mapping[Hashable, float]],
               unit: Callable[[Hashable], Hashable] | None = None) -> bool:
    """Whether some two of `readings` share two seeds (units): a matrix with nothing to pair is left out."""
    return bool(pair_counts(readings, unit))


def pair_counts(readings: Mapping[str, Mapping[Hashable, float]],
                unit: Callable[[Hashable], Hashable] | None = None) -> list[int]:
    """How many seeds (units) each pair of methods shares, for the pairs a matrix can test (two or more): what a
    page's note must speak of, since its star threshold depends on that n."""
    names = list(readings)
    counts = (len(paired_differences(readings[a], readings[b], unit)) for i, a in enumerate(names)
              for b in names[i + 1:])
    return [n for n in counts if n >= 2]


def t_half_width(std: float, n: int, level: float = LEVEL) -> float:
    """Half the width of the two-sided Student t interval of a mean of n paired differences."""
    from scipy.stats import t

    if n < 2:
        raise ValueError(f"t_half_width: needs n >= 2 differences, got {n}")
    return float(t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)


def summarize(diffs: Sequence[float], level: float = LEVEL) -> tuple[float, float | None, int, bool | None]:
    """(mean, sample std, n, whether the t interval excludes 0); std and the verdict None below two seeds.
    Equal differences at every seed have no spread, and no t interval: the verdict is None (untested). Accuracies
    move in whole questions, so two seeds of two methods that differ by nothing give equal differences often:
    until 2026-12-05 they were starred, about 1 pair in 10 at two seeds instead of the 1 in 20 the pages state."""
    from unlearn.report import mean_std

    if not diffs:
        raise ValueError("no seed shared by both methods: nothing to pair")
    mean, std = mean_std(list(diffs))
    if std is None:
        return mean, None, len(diffs), None
    if std < 1e-12:  # float rounding of equal differences (0.85 - 0.1 t against 0.9 - 0.1 t) is no spread either
        return mean, 0.0, len(diffs), None
    return mean, std, len(diffs), abs(mean) > t_half_width(std, len(diffs), level)


def matrix(readings: Mapping[str, Mapping[Hashable, float]], flagged: Mapping[str, set] | None = None,
           level: float = LEVEL, unit: Callable[[Hashable], Hashable] | None = None) -> str:
    """Markdown: row minus column, mean ± std over the seeds both have (over their units, with `unit`; the count
    where it is not every one either has), * where the paired t interval excludes 0; † where a shared seed of
    either method is in `flagged` (its reading is a bound, not a crossing)."""
    names = list(readings)
    lines = ["| row − column | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for r in names:
        cells = []
        for c in names:
            if r == c:
                cells.append("")
                continue
            diffs = paired_differences(readings[r], readings[c], unit)
            if not diffs:
                cells.append("n/a")
                continue
            mean, std, n, sure = summarize(diffs, level)
            shown = f"{mean:+.3f}".replace("-0.000", "+0.000")
            cell = shown if std is None else f"{shown} ± {std:.3f}"
            cell += "*" if sure else ""
            shared = readings[r].keys() & readings[c].keys()
            if flagged and shared & (flagged.get(r, set()) | flagged.get(c, set())):
                cell += " †"
            if n < max(len({k if unit is None else unit(k) for k in readings[x]}) for x in (r, c)):
                cell += f" ({n})"
            cells.append(cell)
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
