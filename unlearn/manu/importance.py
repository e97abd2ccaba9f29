"""MANU neuron scores from streamed activation moments: the paper's formula and the authors' code.

Everything is per hooked module, per neuron, float64 in and float64 out. Inputs are `Moments`
(`unlearn.manu.moments`); a neuron's statistics are derived from its sums, so no activation tensor is
ever needed here.

Two score variants (config `manu.score`):

* `paper_score` (arXiv 2502.15910, Eq. 1-5). Per dataset D (forget f / retain r) and modality
  (multimodal m / text-only t), with Z = mean |a|, N = fraction of tokens with |a| > tau, Var =
  population variance and MS = mean a^2::

      I_abs  = |Z_m - Z_t| / (Z_m + Z_t + eps)
      I_freq = |N_m - N_t| / (N_m + N_t + eps)
      I_var  = sqrt(Var_m + Var_t)
      I_rms  = sqrt(|MS_m - MS_t| / (MS_m + MS_t + eps))
      I(D)   = sum_k w_k I_k(D)                      (w = 1 for every k by default)
      S_n    = I(D_f) / (I(D_r) + eps)

  I_abs, I_freq and I_rms are in [0, 1) and symmetric in (m, t); I_var has the activations' scale and
  is unbounded, so in a layer with large activations it dominates I(D).

* `reference_score` (the authors' public code, `compute_combined_scores_incremental`): per set, the
  plain statistics of all its tokens, abs = mean |a|, freq = fraction |a| > tau (tau = 0.1 there),
  var = std, rms = sqrt(mean a^2), and::

      S_n = sum_k w_k (stat_k(forget) / (stat_k(retain) + eps) - 1),  eps = 1e-5,
      w = REFERENCE_WEIGHTS = {abs: 2, freq: 0, var: 2, rms: 2}

A modality that never reaches a neuron. The vision tower does not run under text-only input, so for
a vision neuron every text-only moment is 0 (count 0, and `Moments` derives 0, not 0/0, for all its
statistics). Then, with Z_m, N_m, MS_m > 0:

* I_abs = Z_m / (Z_m + eps) ~ 1, I_freq = N_m / (N_m + eps) ~ 1 (0 when N_m = 0),
  I_rms = sqrt(MS_m / (MS_m + eps)) ~ 1, I_var = sqrt(Var_m);
* a neuron silent in both modalities gets 0 for all four (0 / eps = 0);
* hence on the vision tower the three bounded terms saturate near 1 on both forget and retain, and
  S_n ~ (w_abs + w_freq + w_rms + w_var sqrt(Var_m(f))) / (same on retain): the paper score of a
  vision neuron is mostly a variance comparison.
* `reference_score` scores whatever moments the caller passes (`unlearn.manu.neuron_scores` passes
  each tower's own modality, as the authors' code does). A set whose statistic is 0 gives the term w_k (0 / eps - 1) =
  -w_k; a retain statistic of 0 under a positive forget one gives a large but finite w_k (F / eps - 1).

All of this is well defined: every denominator is >= eps > 0 and every sqrt argument is >= 0, so for
valid moments no function here returns NaN or inf (non-finite or negative counts / |a| / a^2 sums are
rejected with ValueError).

Deviations of the default (`manu.selection=project`) from the authors' code (github.com/franciscoliu/MANU,
prune/prune_utility.py, prune/prune_incremental.py). `manu.selection=official` (`unlearn/manu/official.py`)
reproduces their selection exactly and is the way to match the paper's numbers; the measured effect of
each step on the embedded model (alpha 20 %, mask Jaccard with the default, MC per modality, means of
3 seeds, on the seed-0 vanilla model of 2026-12-01) is in docs/manu_official.md and docs/guide/manu.md. There the steps are applied
cumulatively in the order padding, statistics, unit, retain subset, layers, batch size; each "Measured"
below is its step's change:

* Unit: here the MLP's intermediate unit (input of fc2 / down_proj; pruning zeroes its producer rows and
  consumer column). Theirs: the OUTPUT rows of fc1 and fc2 (vision) and of gate_proj, up_proj and
  down_proj (language), one global top-alpha over all of a tower's rows, pruning zeroing those rows.
  (`manu.neuron=output` hooks only the Linears `model.mlp_modules` matches, fc2 / down_proj: not theirs.)
  Measured: Jaccard with the default 0.93 -> 0.03 (vision: 92-97 % of their picks are fc2 rows, i.e.
  hidden channels) and 0.76 -> 0.28 (language); retain MC image+text 0.964 -> 0.928, text-only
  0.961 -> 0.942, forget MC -0.08 / -0.07.
* Statistics: here population statistics over all tokens (std = population std). Theirs: per sequence
  position over the batch rows (std unbiased), averaged over the positions of a chunk of 10 shuffled
  batches (the loader re-shuffled for every chunk), then a mean of the chunk means; activations clamped
  to [-1e3, 1e3] (here nothing is clamped). Measured (with their >= threshold rule, on the project's
  unit): Jaccard 0.93 vision / 0.76 language, MC within 0.013; the clamp never binds.
* Padding: masked out here (`callbacks.activation_stats`, by tower); theirs counts the right-padding
  (`manu.mask_padding=false`). Measured: Jaccard 1.00 vision / 0.89 language, MC within 0.002.
* Retain data: the whole retain set here; theirs reads only as many retain batches as the forget set has
  (a random retain subset of the forget set's size). Measured (on their unit): Jaccard 0.28 -> 0.27
  language, MC within 0.04.
* Layers: per module here. Their hooks register every layer of a tower under the same few keys (e.g.
  all vision fc1 layers as `vision_fc1_21`, `_22`, `_23`), so a key's statistics pool all layers and the
  masks reach only layers 21-23 (vision) and 29-31 (language) of LLaVA-1.5-7B (where vision layer 23's
  masks change nothing: LLaVA reads the image features at the second-to-last layer, and both codes prune it).
  Measured: Jaccard 0.27 -> 0.20 language, MC within 0.04 (the tiny model's 2 layers are all within the
  last 3).
* Selection: exactly floor(alpha% of N) neurons, ties by module order then index (`selection.py`);
  theirs prunes every row scoring >= the k-th largest score (more than k on ties). Pooled layers make
  ties by construction (each unit's score copied onto every layer its key reaches), so theirs prunes whole
  units, k rounded up to a multiple of the copies (on LLaVA-1.5-7B's vision tower at alpha 2, k = 307, 309 rows;
  at the preset's alpha 10, k = 1536, a multiple of the 3 copies; on the tiny model 76 and 256, multiples).
* Batch size: 64 here (`manu.batch_size`), 4 there; it matters only to their per-position statistics.
  Measured (official otherwise): Jaccard 0.20 -> 0.20 language, MC within 0.02.
* Same as theirs: the reference score and weights, tau = 0.1, and the modality per tower (vision scored
  on the multimodal passes, language on the text-only passes, `neuron_scores(variant="reference")`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from unlearn.manu.choices import IMPORTANCE_KEYS, check_weights
from unlearn.manu.moments import FIELDS, Moments

PAPER_WEIGHTS: dict[str, float] = {"abs": 1.0, "freq": 1.0, "var": 1.0, "rms": 1.0}
REFERENCE_WEIGHTS: dict[str, float] = {"abs": 2.0, "freq": 0.0, "var": 2.0, "rms": 2.0}


def _check_eps(eps: float) -> float:
    """eps > 0 is what keeps 0/0 out of every ratio."""
    eps = float(eps)
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps={eps!r}: must be a finite number > 0 (it keeps 0/0 out of the ratios)")
    return eps


def _check_moments(*named: tuple[str, Moments]) -> None:
    """Same width, finite sums, non-negative counts / |a| / a^2 sums: a corrupt input must fail here,
    not surface as a NaN score or a pruned neuron."""
    widths = {name: m.sum.shape for name, m in named}
    if len(set(widths.values())) > 1:
        raise ValueError(f"moments disagree on the number of neurons: {widths}")
    for name, m in named:
        for f in FIELDS:
            value = getattr(m, f)
            if not torch.isfinite(value).all():
                raise ValueError(f"{name} moments: field {f!r} is not finite")
            if f != "sum" and (value < 0).any():  # counts, |a| and a^2 sums: negative means corrupt
                raise ValueError(f"{name} moments: field {f!r} has negative entries")


def _normalized_gap(x: Tensor, y: Tensor, eps: float) -> Tensor:
    """|x - y| / (x + y + eps) for x, y >= 0: in [0, 1), 0 when both are 0."""
    return (x - y).abs() / (x + y + eps)


def paper_importance(mm: Moments, tx: Moments, eps: float = 1e-8) -> dict[str, Tensor]:
    """The paper's four modality-gap importances of one dataset (multimodal vs text-only moments)."""
    eps = _check_eps(eps)
    _check_moments(("multimodal", mm), ("text-only", tx))
    return {
        "abs": _normalized_gap(mm.mean_abs, tx.mean_abs, eps),
        "freq": _normalized_gap(mm.frac_above, tx.frac_above, eps),
        "var": (mm.var + tx.var).sqrt(),
        "rms": _normalized_gap(mm.mean_sq, tx.mean_sq, eps).sqrt(),
    }


def weighted_sum(parts: Mapping[str, Tensor], weights: Mapping[str, float]) -> Tensor:
    """sum_k weights[k] * parts[k]. A key absent from `weights` weighs 0; a zero weight drops its term
    entirely (it is not multiplied, so it cannot turn into NaN)."""
    allowed = tuple(parts)
    checked = check_weights(weights, allowed)
    if not allowed:
        raise ValueError("weighted_sum: no parts")
    total = torch.zeros_like(next(iter(parts.values())), dtype=torch.float64)
    for key, w in checked.items():
        if w != 0.0:
            total = total + w * parts[key].double()
    return total


def paper_score(
    forget_mm: Moments,
    forget_tx: Moments,
    retain_mm: Moments,
    retain_tx: Moments,
    weights: Mapping[str, float] | None = None,
    eps: float = 1e-8,
) -> Tensor:
    """S_n = I(D_f) / (I(D_r) + eps): high where the forget set's modality gap exceeds the retain set's.

    `weights=None` is the paper's plain sum (all 1). Weights must be >= 0 so that I(D_r) + eps > 0.
    """
    weights = PAPER_WEIGHTS if weights is None else weights
    checked = check_weights(weights, IMPORTANCE_KEYS, nonnegative=True)
    eps = _check_eps(eps)
    i_forget = weighted_sum(paper_importance(forget_mm, forget_tx, eps), checked)
    i_retain = weighted_sum(paper_importance(retain_mm, retain_tx, eps), checked)
    return i_forget / (i_retain + eps)


def reference_statistics(m: Moments) -> dict[str, Tensor]:
    """The authors' four per-set statistics; tau is whatever `m` was collected with (0.1 there)."""
    _check_moments(("statistics", m))
    return {"abs": m.mean_abs, "freq": m.frac_above, "var": m.var.sqrt(), "rms": m.mean_sq.sqrt()}


def reference_score(
    forget: Moments,
    retain: Moments,
    weights: Mapping[str, float] | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """S_n = sum_k w_k (stat_k(forget) / (stat_k(retain) + eps) - 1), as in the authors' code.

    `forget` / `retain` are each set's moments of ONE modality, whichever the caller passes: nothing here
    pools modalities. `neuron_scores` passes a vision module's multimodal moments and a language module's
    text-only moments, as the authors' hooks do.
    `weights=None` is REFERENCE_WEIGHTS. Negative weights are allowed: nothing divides by them.
    """
    weights = REFERENCE_WEIGHTS if weights is None else weights
    checked = check_weights(weights, IMPORTANCE_KEYS)
    eps = _check_eps(eps)
    _check_moments(("forget", forget), ("retain", retain))
    f, r = reference_statistics(forget), reference_statistics(retain)
    ratios = {k: f[k] / (r[k] + eps) - 1.0 for k in IMPORTANCE_KEYS}
    return weighted_sum(ratios, checked)
