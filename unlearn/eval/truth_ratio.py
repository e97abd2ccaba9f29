"""Answer probability, truth ratio and forget quality: TOFU's likelihood metrics, as CLEAR reports them.

Why these: ROUGE and accuracy read what a model *says*; these read what it *believes*. For an item with a
paraphrased answer p and perturbed (wrong, same-shape) answers w_1..w_k, all scored as per-token mean
log-probabilities of the answer given the question (length-normalised, as TOFU and CLEAR do):

  * answer probability  P(a | q)^(1/|a|) of the ground truth a (`prob`), and its share among the truth and
                        the wrong answers, `P(a) / (P(a) + sum_i P(w_i))` (`prob_rel`: CLEAR's "Prob." for
                        face recognition, real faces and real-world questions);
  * truth ratio         R = exp(mean_i log P(w_i)^(1/|w_i|) - log P(p)^(1/|p|)), the geometric mean of the
                        wrong answers' probabilities over the paraphrase's. R < 1: the model prefers the truth.
  * reported truth ratio: on the forget people's splits (forget, and test: the same people asked again)
    `mean(min(R, 1/R))` (1 is best: no preference left); on every other split `mean(max(0, 1 - R))`
    (higher is better: the truth is preferred).
  * forget quality      the p-value of a two-sample Kolmogorov-Smirnov test between the forget split's R of
                        the evaluated model and of a reference model trained without the forget people
                        (`eval.reference_run`): high means indistinguishable from never having learnt them.

Sources (semantics, not code): CLEAR's evaluation, somvy/multimodal_unlearning mm/eval.py
(`eval_perturbation_ratio`: per-item R from per-token losses) and mm/calculate_metrics.py (aggregation,
`min(R, 1/R)` on forget, `max(0, 1 - R)` elsewhere, `ks_2samp` for forget quality); TOFU (Maini et al. 2024)
and locuslab/open-unlearning, which define R and forget quality the same way.

One deviation of CLEAR's calculate_metrics is a setting, `perturbed="pooled"`: there the wrong answers' mean
loss is pooled over the *whole split* before the ratio is taken (a scalar, not per item), unlike its own
eval.py and TOFU. The default `item` follows eval.py and TOFU; `pooled` reproduces calculate_metrics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

PERTURBED_MODES = ("item", "pooled")
FORGET_PEOPLE_SPLITS = ("forget", "test")  # test: the forget people with held-out questions and images


def _exp(x: float) -> float:
    """exp that reads past float's range as inf rather than raising (a model unlearned far enough gives the
    truth log-probabilities hundreds of nats below the wrong answers'; numpy, which TOFU and CLEAR use, says inf)."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def answer_probability(mean_logp: float) -> float:
    """Length-normalised probability of an answer from its per-token mean log-probability."""
    return math.exp(mean_logp)


def relative_probability(gt_logp: float, pert_logp: Sequence[float]) -> float:
    """The truth's share of the length-normalised probabilities of the truth and the wrong answers: CLEAR's
    "Prob." for its face recognition and real-world tasks (calculate_metrics.py, the non-`eval_log` branch)."""
    top = max(gt_logp, *pert_logp)  # shifted by the largest, so neither 0 / 0 nor an overflow
    truth = math.exp(gt_logp - top)
    return truth / (truth + sum(math.exp(x - top) for x in pert_logp))


def truth_ratios(para_logp: Sequence[float], pert_logp: Sequence[Sequence[float]],
                 perturbed: str = "item") -> list[float]:
    """Per-item R for a split: `para_logp[i]` the paraphrase's per-token mean log-prob, `pert_logp[i]` the
    wrong answers' ones. `perturbed="pooled"` uses one mean over every wrong answer of the split instead of
    each item's own (CLEAR's calculate_metrics)."""
    if perturbed not in PERTURBED_MODES:
        raise ValueError(f"eval.truth_ratio_perturbed={perturbed!r}: expected one of {PERTURBED_MODES}")
    if len(para_logp) != len(pert_logp):
        raise ValueError(f"{len(para_logp)} paraphrase scores but {len(pert_logp)} lists of perturbed scores")
    if any(len(w) == 0 for w in pert_logp):
        raise ValueError("an item has no perturbed answers; the truth ratio needs at least one")
    if perturbed == "pooled":
        flat = [x for w in pert_logp for x in w]
        pooled = sum(flat) / len(flat) if flat else 0.0
        return [_exp(pooled - p) for p in para_logp]
    return [_exp(sum(w) / len(w) - p) for p, w in zip(para_logp, pert_logp)]


def reported_truth_ratio(ratios: Sequence[float], split: str) -> float:
    """CLEAR/TOFU's reading of a split's ratios: `min(R, 1/R)` on the forget people's splits, `max(0, 1 - R)`
    elsewhere."""
    if not ratios:
        raise ValueError(f"no truth ratios on split {split!r}")
    if split in FORGET_PEOPLE_SPLITS:
        vals = [min(r, 1.0 / r) if r > 0 else 0.0 for r in ratios]
    else:
        vals = [max(0.0, 1.0 - r) for r in ratios]
    return sum(vals) / len(vals)


def forget_quality(ratios: Sequence[float], reference_ratios: Sequence[float]) -> tuple[float, float]:
    """(p-value, statistic) of the two-sample KS test between the model's and the reference's forget-split
    ratios (scipy's `ks_2samp`, its default exact/asymptotic choice, as CLEAR and open-unlearning call it)."""
    if len(ratios) == 0 or len(reference_ratios) == 0:
        raise ValueError("forget quality needs truth ratios from both the model and the reference model")
    from scipy.stats import ks_2samp

    res = ks_2samp(list(ratios), list(reference_ratios))
    return float(res.pvalue), float(res.statistic)


def forget_quality_js(ratios: Sequence[float], reference_ratios: Sequence[float]) -> float:
    """CLEAR's tables' "Forget Quality" (mm/build_vllm_table.py:104, mm/build_mod_table.py:63: 1 - "JS metric"),
    the JS metric being calculate_metrics.py:69's `scipy.spatial.distance.jensenshannon` of the two models'
    forget-split truth ratios read as two distributions over the items (each vector divided by its sum, paired
    item by item, natural log: the Jensen-Shannon *distance*, in [0, sqrt(ln 2)]). CLEAR's ratio there is
    exp(perturbed loss - paraphrase loss) = P(paraphrase) / P(perturbed), the inverse of R here, which the JS
    distance, unlike the KS test, does not ignore (with pooled ratios the split's perturbed mean cancels in the
    division by the sum: only the paraphrases' probabilities enter). `ratios[i]` and `reference_ratios[i]` must
    be the same item.
    NaN where a ratio is infinite, as numpy's is."""
    if len(ratios) != len(reference_ratios) or not ratios:
        raise ValueError(f"the JS forget quality pairs the items of both models: {len(ratios)} ratios against "
                         f"{len(reference_ratios)} of the reference")
    import numpy as np
    from scipy.spatial.distance import jensenshannon

    with np.errstate(divide="ignore", invalid="ignore"):
        theirs = 1.0 / np.asarray(ratios, dtype=float)
        ref = 1.0 / np.asarray(reference_ratios, dtype=float)
        return float(1.0 - jensenshannon(theirs, ref))
