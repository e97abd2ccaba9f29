"""MANU's choices by name, apart from its method module and callbacks (Lightning): the checks before a run read
them without it (unlearn/before_run.py)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

SELECTIONS = ("project", "official")  # manu.selection
NEURONS = ("input", "output")  # manu.neuron
OFFICIAL_UNITS = ("output", "intermediate")  # manu.official.unit: the hooked Linears' outputs (theirs), or inputs

SCOPES = ("tower", "layer")  # manu.scope: one top-alpha per tower, or per layer (unlearn/manu/selection.py)
VARIANTS = ("paper", "reference", "random")  # manu.score (unlearn/manu/neuron_scores.py)
IMPORTANCE_KEYS = ("abs", "freq", "var", "rms")  # manu.weights' keys (unlearn/manu/importance.py)


def check_weights(weights: Mapping[str, float], allowed, nonnegative: bool = False) -> dict[str, float]:
    """`manu.weights` as floats; a key outside `allowed`, a value that is no finite number, or (`nonnegative`: the
    paper score, which divides by a weighted sum) a negative one is refused by name. Read before the run
    (unlearn/settings.py) and where the score is computed."""
    unknown = sorted(set(weights) - set(allowed))
    if unknown:
        raise ValueError(f"manu.weights has no setting {unknown}; known: {', '.join(allowed)}")
    out = {}
    for key, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, numbers.Real) or not math.isfinite(float(w)):
            raise ValueError(f"manu.weights.{key}={w!r}: expected a finite number")
        out[key] = float(w)
    negative = {k: w for k, w in out.items() if w < 0}
    if nonnegative and negative:
        raise ValueError(f"manu.weights: manu.score=paper needs weights >= 0, got {negative}")
    return out
