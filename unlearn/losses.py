"""Unlearning losses as small pure functions of logits and labels (to read side by side).

Notation: NLL(x) = token-averaged negative log-likelihood of x's label tokens (HF's model loss);
log p(y|x) = SUM of the answer tokens' log-probs; ref = frozen reference model (detached).

- GA:        L = -NLL(forget)
- GradDiff:  L = -gamma * NLL(forget) + alpha * NLL(retain)
- KL:        L = -NLL(forget) + alpha * mean_tokens KL(p_ref || p_theta) on retain
- NPO:       L = mean_seq -(2/beta) * logsigmoid(-beta * r),  r = log p_theta(y|x) - log p_ref(y|x)
- NPO+RT:    L = NPO + alpha * NLL(retain)

Every mean (over tokens, or NPO's rows) takes an optional `mean(total, count)`: by default total / count of
this batch; under DDP, `global_mean` with the count summed over processes, so that DDP's gradient average
equals the gradient of the mean over the whole global batch (ranks hold different numbers of tokens).

Conventions: labels hold IGNORE (-100) where there is no loss; logits at position t predict the token at
t+1 (HF causal shift), so the label at position 0 is never scored and the logits at the last position are
never used. Log-probs are computed in (at least) float32 whatever the logits dtype, because bf16
log-softmax over a large vocabulary loses the small differences these losses are made of.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from unlearn.data.collate import IGNORE
from unlearn.loss_settings import KL_REDUCTIONS, NPO_EMPTY_ROWS, NPO_LOG_RATIOS

Mean = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (sum over this batch's items, their count) -> mean


def _check(logits: torch.Tensor, labels: torch.Tensor, what: str = "logits") -> None:
    if logits.dim() != 3:
        raise ValueError(f"{what} must be (batch, seq, vocab), got shape {tuple(logits.shape)}")
    if labels.dim() != 2 or tuple(labels.shape) != tuple(logits.shape[:2]):
        raise ValueError(f"labels shape {tuple(labels.shape)} does not match {what} shape "
                         f"{tuple(logits.shape)}: expected labels of shape {tuple(logits.shape[:2])}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor of token ids, got {labels.dtype}")


def _same_shape(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what}: shapes {tuple(a.shape)} and {tuple(b.shape)} differ")


def _shifted(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels aligned with logits[:, :-1], and their mask of scored tokens."""
    target = labels[:, 1:]
    return target, target != IGNORE


def _n_tokens(mask: torch.Tensor, what: str) -> torch.Tensor:
    """Number of scored tokens; an empty batch would otherwise give 0/0 = nan (or a silent 0)."""
    n = mask.sum()
    if n == 0:
        raise ValueError(f"{what}: the batch has no label tokens (all labels are IGNORE={IGNORE} after the "
                         "causal shift), so there is nothing to average over")
    return n


def _average(total: torch.Tensor, items: torch.Tensor, what: str, mean: Mean | None) -> torch.Tensor:
    """`mean(total, count of items)`; by default total / count, refusing an empty batch (0/0)."""
    if mean is not None:
        return mean(total, items.sum())
    return total / _n_tokens(items, what)


def global_mean(total: torch.Tensor, global_count: torch.Tensor, world_size: int = 1) -> torch.Tensor:
    """This process's share of a mean over all W processes' items: W * total / global_count.

    DDP averages gradients over the W processes, so the averaged gradient is that of sum_r total_r /
    global_count, the one-process mean of the whole global batch, however the items fall across processes.
    The count carries no gradient. W = 1 gives total / count exactly (total * 1 is exact).
    """
    if global_count == 0:
        raise ValueError(f"no label tokens on any of the {world_size} processes: nothing to average over")
    return total * world_size / global_count.detach()


def _float(logits: torch.Tensor) -> torch.Tensor:
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(label_{t+1} | logits_t), shape (B, T-1), 0 where masked; and the mask (labels[:, 1:] != IGNORE)."""
    _check(logits, labels)
    target, mask = _shifted(labels)
    vocab = logits.shape[-1]
    bad = mask & ((target < 0) | (target >= vocab))
    if bad.any():  # a clear error here instead of a CUDA device-side assert in gather
        raise ValueError(f"labels hold token ids outside [0, {vocab}) that are not IGNORE={IGNORE}: "
                         f"{target[bad].unique().tolist()[:5]}")
    logp = torch.log_softmax(_float(logits[:, :-1]), dim=-1)
    logp = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return logp * mask, mask


def sequence_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """-log p(y|x) per row, shape (B,): the SUM over the row's label tokens (0 for a row without any)."""
    logp, _ = token_logprobs(logits, labels)
    return -logp.sum(-1)


def mean_nll(logits: torch.Tensor, labels: torch.Tensor, mean: Mean | None = None) -> torch.Tensor:
    """NLL averaged over every label token of the batch; equals HF's `model(**batch).loss`."""
    logp, mask = token_logprobs(logits, labels)
    return _average(-logp.sum(), mask, "mean_nll", mean)


def ga_loss(forget_logits: torch.Tensor, forget_labels: torch.Tensor, mean: Mean | None = None) -> torch.Tensor:
    """Gradient ascent: minimise -NLL(forget), i.e. push the forget answers' likelihood down (unbounded)."""
    return -mean_nll(forget_logits, forget_labels, mean)


def grad_diff_loss(forget_logits: torch.Tensor, forget_labels: torch.Tensor, retain_logits: torch.Tensor,
                   retain_labels: torch.Tensor, gamma: float = 1.0, alpha: float = 1.0,
                   mean: Mean | None = None) -> torch.Tensor:
    """-gamma * NLL(forget) + alpha * NLL(retain): ascend on forget while still descending on retain."""
    return (gamma * ga_loss(forget_logits, forget_labels, mean)
            + alpha * mean_nll(retain_logits, retain_labels, mean))


def kl_retain(current_logits: torch.Tensor, reference_logits: torch.Tensor,
              labels: torch.Tensor, mean: Mean | None = None, reduction: str = "answer_mean") -> torch.Tensor:
    """KL(p_ref || p_theta) over the vocabulary, reduced over positions by `reduction`:

    - answer_mean (default): mean over scored (shifted, non-IGNORE) tokens; padding and prompt positions
      neither dilute nor dominate it.
    - position_mean: mean over every position of the logits, prompt and padding included (open-unlearning's
      `compute_kl_divergence`: kl_div(batchmean) over logits flattened to (B*T, V)).
    - batch_sum: sum over every position, divided by the batch size (MLLMU-Bench's KL_Min: kl_div(batchmean)
      over (B, T, V) logits); larger than position_mean by the sequence length.

    The reference is a fixed target (detached): only the current model is pulled towards it.
    """
    if reduction not in KL_REDUCTIONS:
        raise ValueError(f"method.kl_reduction={reduction!r}: expected one of {KL_REDUCTIONS}")
    _check(current_logits, labels, "current_logits")
    _same_shape(current_logits, reference_logits, "kl_retain current_logits vs reference_logits")
    if reduction != "answer_mean":
        cur = torch.log_softmax(_float(current_logits), dim=-1)
        ref = torch.log_softmax(_float(reference_logits.detach()), dim=-1)
        kl = F.kl_div(cur, ref, reduction="none", log_target=True).sum()
        b, t = labels.shape
        items = torch.ones(b * t if reduction == "position_mean" else b, device=labels.device)
        return _average(kl, items, "kl_retain", mean)
    _, mask = _shifted(labels)
    cur = torch.log_softmax(_float(current_logits[:, :-1]), dim=-1)
    ref = torch.log_softmax(_float(reference_logits.detach()[:, :-1]), dim=-1)
    # kl_div(input=log q, target=log p, log_target=True) = p * (log p - log q), summed over the vocabulary
    kl = F.kl_div(cur, ref, reduction="none", log_target=True).sum(-1)
    return _average((kl * mask).sum(), mask, "kl_retain", mean)


def kl_loss(forget_logits: torch.Tensor, forget_labels: torch.Tensor, retain_logits: torch.Tensor,
            retain_ref_logits: torch.Tensor, retain_labels: torch.Tensor, alpha: float = 1.0,
            mean: Mean | None = None, reduction: str = "answer_mean", gamma: float = 1.0) -> torch.Tensor:
    """-gamma * NLL(forget) + alpha * KL(p_ref || p_theta) on retain: ascend on forget, stay close to ref on
    retain (open-unlearning's GradDiff with its KL retain loss weighs the two terms gamma and alpha)."""
    return gamma * ga_loss(forget_logits, forget_labels, mean) + alpha * kl_retain(
        retain_logits, retain_ref_logits, retain_labels, mean, reduction)


def npo_loss(forget_logits: torch.Tensor, forget_ref_logits: torch.Tensor, forget_labels: torch.Tensor,
             beta: float = 0.1, retain_logits: torch.Tensor | None = None,
             retain_labels: torch.Tensor | None = None, alpha: float = 0.0,
             mean: Mean | None = None, log_ratio: str = "sequence_sum", gamma: float = 1.0,
             empty_rows: str = "skip", fillers: torch.Tensor | None = None) -> torch.Tensor:
    """NPO (Zhang et al. 2024): gamma times the mean over rows of -(2/beta) * logsigmoid(-beta * r).

    r = log p_theta(y|x) - log p_ref(y|x) with log p the SUM of answer-token log-probs; the reference is
    detached. d L / d r = 2 * sigmoid(beta * r): about 1 (gradient ascent) near the reference and as beta -> 0,
    decaying to 0 once a row is already unlikely (r -> -inf), which is what keeps NPO from collapsing like GA.
    `empty_rows` (NPO_EMPTY_ROWS, `method.npo_empty_rows`): rows with no label tokens are left out of the mean
    (skip: their r is 0 by construction, which would only add the constant (2/beta) ln 2 and shrink the others'
    weight), or counted as open-unlearning counts them (count). `fillers` (B,) bool: rows that only fill a DDP
    shard (unlearn/data/sampling.py Repeat), never counted: with one process there are none, so W processes
    average the one process's rows under either value. With alpha > 0, adds alpha * NLL(retain)
    (open-unlearning's NPO: gamma * forget loss + alpha * retain loss).

    `log_ratio`: sequence_sum (above; open-unlearning's `compute_dpo_loss`) or token_mean (MLLMU-Bench's
    NPO: one ratio per batch from the models' token-mean losses, r = NLL_ref - NLL_theta; under DDP each
    process's own batch, as its per-device loss, so `mean` is not used for the forget term).
    """
    if beta <= 0:
        raise ValueError(f"npo_loss: beta must be > 0, got {beta}")
    if log_ratio not in NPO_LOG_RATIOS:
        raise ValueError(f"method.npo_log_ratio={log_ratio!r}: expected one of {NPO_LOG_RATIOS}")
    if empty_rows not in NPO_EMPTY_ROWS:
        raise ValueError(f"method.npo_empty_rows={empty_rows!r}: expected one of {NPO_EMPTY_ROWS}")
    # each model's log-probabilities over its own vocabulary, as two separate `outputs.loss` are: the reference
    # may be cut to the tokenizer while the model keeps padded rows (MMUnlearner's CLEAR_reference.py and
    # CLEAR_NPO.py), so only the positions must agree, and every label must be in both vocabularies
    _same_shape(forget_logits[..., 0], forget_ref_logits[..., 0], "npo_loss forget_logits vs forget_ref_logits")
    width = min(forget_logits.shape[-1], forget_ref_logits.shape[-1])
    if forget_logits.shape[-1] != forget_ref_logits.shape[-1] and int(forget_labels.max()) >= width:
        raise ValueError(f"npo_loss: a label id ({int(forget_labels.max())}) is past the narrower model's vocabulary "
                         f"({width} rows): the model and its reference cannot score the same tokens")
    if log_ratio == "token_mean":
        if getattr(mean, "world_size", 1) > 1 and not _shifted(forget_labels)[1].any():
            # under DDP, a process whose batch holds only its shard's padding repeats (read without labels,
            # unlearn/data/sampling.py): it adds nothing, as the one-process batch has no such rows; with one
            # process an unlabelled batch is refused below
            loss = forget_logits.sum() * 0.0
        else:
            r = mean_nll(forget_ref_logits.detach(), forget_labels) - mean_nll(forget_logits, forget_labels)
            loss = -(2.0 / beta) * F.logsigmoid(-beta * r)
    else:
        logp, mask = token_logprobs(forget_logits, forget_labels)
        ref_logp, _ = token_logprobs(forget_ref_logits.detach(), forget_labels)
        if empty_rows == "skip":
            rows = mask.any(-1)
        else:  # every row but a shard's fillers: an empty row's r is exactly 0 (its log-probs are masked to 0)
            rows = torch.ones_like(mask[:, 0]) if fillers is None else ~fillers.to(mask.device, torch.bool)
        r = (logp.sum(-1) - ref_logp.sum(-1))[rows]
        loss = _average((-(2.0 / beta) * F.logsigmoid(-beta * r)).sum(), rows, "npo_loss (forget)", mean)
    loss = gamma * loss
    if alpha > 0:
        if retain_logits is None or retain_labels is None:
            raise ValueError("npo_loss: alpha > 0 needs both retain_logits and retain_labels")
        loss = loss + alpha * mean_nll(retain_logits, retain_labels, mean)
    return loss
