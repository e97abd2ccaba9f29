"""Which neurons MANU prunes: the top alpha percent of scores, per tower or per module.

Rounding. A group of N neurons (a tower, or one module) prunes k = floor(alpha / 100 * N) of them,
computed exactly on the decimal value of alpha (alpha = 29, N = 100 gives 29, not the 28 that float
arithmetic 29 / 100 * 100 = 28.999999999999996 gives). So alpha = 0 prunes none, alpha = 100 prunes
all, and a group with alpha * N < 100 prunes none. floor is also what the authors' code does (`int(alpha / 100 * N)`),
though it then prunes every neuron scoring >= the k-th score, i.e. more than k on ties; here exactly k.

Ties. Neurons are ranked by score descending, then by module in the insertion order of `scores`, then
by neuron index ascending, so equal scores always resolve the same way on every call and every rank.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from fractions import Fraction

import torch
from torch import Tensor

from unlearn.manu.choices import SCOPES


def _check_alpha(alpha: float) -> Fraction:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not math.isfinite(float(alpha)):
        raise ValueError(f"manu.alpha={alpha!r}: must be a finite number of percent in [0, 100]")
    if not 0 <= alpha <= 100:
        raise ValueError(f"manu.alpha={alpha!r}: must be in [0, 100] (it is a percent: 2.0 means 2 %)")
    return Fraction(str(float(alpha)))  # the decimal the user wrote, not its binary approximation


def prune_count(alpha: float, n: int) -> int:
    """k = floor(alpha / 100 * n), exact in the decimal value of alpha."""
    return math.floor(_check_alpha(alpha) * n / 100)


def _check_scores(scores: Mapping[str, Tensor], towers: Mapping[str, str]) -> None:
    for name, s in scores.items():
        if not isinstance(s, Tensor) or s.dim() != 1:
            raise ValueError(f"scores[{name!r}]: expected a 1-D tensor of per-neuron scores")
        if torch.isnan(s).any():
            raise ValueError(f"scores[{name!r}] has NaN entries ({int(torch.isnan(s).sum())} of {s.numel()})")
        if name not in towers:
            raise ValueError(f"module {name!r} has a score but no tower in `towers`")


def _top_k(flat: Tensor, k: int) -> Tensor:
    """Mask of the k largest entries; the stable sort keeps ties in their (module, index) order."""
    mask = torch.zeros(flat.numel(), dtype=torch.bool)
    if k > 0:
        order = torch.sort(flat, descending=True, stable=True).indices
        mask[order[:k]] = True
    return mask


def select_neurons(
    scores: Mapping[str, Tensor],
    towers: Mapping[str, str],
    alpha: float,
    scope: str = "tower",
) -> dict[str, Tensor]:
    """module name -> bool mask (True = prune) of its neurons, keys and order as in `scores`.

    scope="tower": all neurons of all modules of one tower compete for floor(alpha% of the tower);
    scope="layer": each module prunes floor(alpha% of its own neurons).
    """
    if scope not in SCOPES:
        raise ValueError(f"manu.scope={scope!r}: expected one of {', '.join(SCOPES)}")
    _check_alpha(alpha)
    _check_scores(scores, towers)

    if scope == "layer":
        groups = [[name] for name in scores]
    else:
        by_tower: dict[str, list[str]] = {}
        for name in scores:  # insertion order of `scores` inside each tower
            by_tower.setdefault(towers[name], []).append(name)
        groups = list(by_tower.values())

    masks: dict[str, Tensor] = {}
    for names in groups:
        flat = torch.cat([scores[n].detach().to("cpu", torch.float64) for n in names])
        picked = _top_k(flat, prune_count(alpha, flat.numel()))
        for n, part in zip(names, torch.split(picked, [scores[n].numel() for n in names])):
            masks[n] = part.to(scores[n].device)
    return {n: masks[n] for n in scores}


def summarize(masks: Mapping[str, Tensor], towers: Mapping[str, str]) -> dict:
    """JSON-able counts: per module {tower, neurons, pruned, fraction}, per tower and overall totals."""

    def entry(neurons: int, pruned: int) -> dict:
        return {"neurons": neurons, "pruned": pruned, "fraction": pruned / neurons if neurons else 0.0}

    modules, tower_totals = {}, {}
    for name, mask in masks.items():
        tower = towers[name]
        neurons, pruned = int(mask.numel()), int(mask.sum())
        modules[name] = {"tower": tower, **entry(neurons, pruned)}
        n, p = tower_totals.get(tower, (0, 0))
        tower_totals[tower] = (n + neurons, p + pruned)
    total_n = sum(n for n, _ in tower_totals.values())
    total_p = sum(p for _, p in tower_totals.values())
    return {
        "modules": modules,
        "towers": {t: entry(n, p) for t, (n, p) in tower_totals.items()},
        "total": entry(total_n, total_p),
    }
