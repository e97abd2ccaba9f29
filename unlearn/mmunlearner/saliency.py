"""MMUnlearner's saliency mask: which weights matter more to the forget data than to what must be kept.

Diagonal Fisher = mean over batches of squared gradients of the NLL, accumulated in float32 whatever the
parameter dtype (squared fp16 gradients underflow), or, with `mmunlearner.fisher_dtype=float16|bfloat16`,
squared, divided by the batch count and summed in that dtype as the authors do (see `official_half_mask`). Masks and
Fishers are keyed by the parameter *object*, never by name, so wrappers that rename parameters (DDP's `module.`, peft's
`base_model.model.`) cannot make a mask silently match nothing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

import torch
from torch import nn


def squared_grads(loss: torch.Tensor, params: list[nn.Parameter]) -> list[torch.Tensor]:
    """Squared gradient of `loss` for each parameter, in float32 (zeros for an unused parameter)."""
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros(p.shape, dtype=torch.float32, device=p.device) if g is None else g.float().square()
            for p, g in zip(params, grads)]


def saliency_mask(forget: torch.Tensor, preserve: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """True where F_f / F_p >= gamma, with 0/0 := 0 and x/0 := inf for x > 0.

    Written as F_f >= gamma * F_p and F_f > 0, so it is exact at ties (no epsilon to tip them) and a
    weight that no data reaches (0/0) is never unlearned.
    """
    if gamma <= 0:
        raise ValueError(f"mmunlearner.gamma={gamma}: must be > 0 (0 would select every weight)")
    return (forget >= gamma * preserve) & (forget > 0)


HALF_DTYPES = (torch.float16, torch.bfloat16)


def half_fisher_add(acc: torch.Tensor, grad: torch.Tensor, n_batches: int,
                    dtype: torch.dtype = torch.float16) -> torch.Tensor:
    """acc + grad ** 2 / n_batches, each operation rounded to `dtype` (SFRon.py, Mask_Our: the gradient of a
    half-precision model, squared, divided by len(loader), summed in the parameters' dtype: float16 in
    MLLMU_gen_mask.py, bfloat16 in CLEAR_gen_mask.py). In float16, squares under ~3e-8 (|grad| < ~1.7e-4) are 0;
    bfloat16 keeps float32's range and rounds to 8 significant bits.

    Theirs divides on the CPU (`grad.cpu() ** 2 / len(loader)`): the square in `dtype`, divided in float32 by the
    exact count, rounded once to `dtype`. Here the square is divided in float32 by a float32 divisor tensor on the
    gradient's device, then rounded: the same on CPU and CUDA. Dividing the half tensor directly differs on CUDA:
    by a Python number it multiplies by the float32 reciprocal, which rounds a float16 subnormal halfway case the
    other way (91 x 2^-24 / 14: 7 x 2^-24 against their 6 x 2^-24; thirty-first session's audit), and by a divisor
    tensor it first casts the divisor to `dtype`, so a count past 256 in bfloat16 (past 2048 in float16) is
    rounded (257 reads 256; a helper's review, thirty-fifth session). CUDA unverified here:
    `bench/half_fisher_check.py` on a lent GPU."""
    divisor = torch.tensor(float(n_batches), device=grad.device, dtype=torch.float32)
    return acc.to(dtype) + ((grad.to(dtype) ** 2).float() / divisor).to(dtype)


def official_half_mask(forget: torch.Tensor, preserve: torch.Tensor, gamma: float = 1.0,
                       dtype: torch.dtype = torch.float16) -> torch.Tensor:
    """The authors' rule on half-precision Fishers (data_process/SFRon.py, Mask_Our):
    (F_f + 1e-15) / (F_p + 1e-15) >= gamma, computed in `dtype`. In float16 1e-15 rounds away (its smallest
    subnormal is 6e-8), so 0/0 = nan is not selected, x/0 = inf is, and a ratio past 65504 becomes inf. In
    bfloat16 (CLEAR_gen_mask.py) 1e-15 is kept: 0/0 = 1, so a weight no data reaches is selected at gamma <= 1,
    and x/0 is x * 1e15, finite."""
    if gamma <= 0:
        raise ValueError(f"mmunlearner.gamma={gamma}: must be > 0 (0 would select every weight)")
    f, p = forget.to(dtype), preserve.to(dtype)
    return ((f + 1e-15) / (p + 1e-15)) >= gamma


def gamma_for_fraction(pairs: list[tuple[torch.Tensor, torch.Tensor]], fraction: float,
                       steps: int = 64) -> float:
    """The largest gamma whose `saliency_mask` selects at least `fraction` of all elements of `pairs`
    ((F_f, F_p) per tensor), found by bisection on log gamma: one mask size for every model.

    Why: under a fixed gamma the mask's size follows how well the model already fits the forget data
    against the preserve data, so it differs between taught models (docs/frontier_evidence.md); a fixed
    fraction (SalUn's top-k saliency rule) holds it equal. Ties at the threshold are all selected, so the
    mask may exceed the fraction by the tied elements; every element with F_p = 0 < F_f is selected at any
    gamma, so the fraction cannot go below theirs.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"mmunlearner.mask_fraction={fraction}: expected a fraction in (0, 1]")
    total = sum(f.numel() for f, _ in pairs)
    need = math.ceil(fraction * total)

    def selected(gamma: float) -> int:  # the very comparison the mask makes, so the count is the mask's
        return sum(int(saliency_mask(f, p, gamma).sum()) for f, p in pairs)

    reachable = sum(int((f > 0).sum()) for f, _ in pairs)
    if reachable < need:
        raise ValueError(f"mmunlearner.mask_fraction={fraction}: only {reachable} of {total} elements "
                         f"({reachable / total:.4f}) have a non-zero forget Fisher; lower it")
    lo, hi = -160.0, 127.0  # log2 gamma: 2^-160 selects every F_f > 0; 2^127 is float32's largest power of 2
    for _ in range(steps):
        mid = (lo + hi) / 2
        if selected(2.0 ** mid) >= need:
            lo = mid
        else:
            hi = mid
    return 2.0 ** lo


def mask_report(masks: dict[nn.Parameter, torch.Tensor], names: dict[nn.Parameter, str]) -> dict:
    """Per-tensor sparsity for the artifact and the log; a mask touching nothing is an error upstream."""
    per = {names[p]: {"elements": m.numel(), "selected": int(m.sum()), "fraction": float(m.float().mean())}
           for p, m in masks.items()}
    total = sum(v["elements"] for v in per.values())
    selected = sum(v["selected"] for v in per.values())
    return {"tensors": per, "parameters": len(per), "elements": total, "selected": selected,
            "fraction": selected / total if total else 0.0}


def group_parameters(model: nn.Module, patterns: dict[str, str],
                     required: tuple[str, ...] | None = None) -> dict[str, list[nn.Parameter]]:
    """Trainable parameters per group (regex on the parameter name, searched); every group in `required` (default:
    all) must match, the others may be empty (a tower LoRA does not adapt, under mmunlearner.groups=language)."""
    out: dict[str, list[nn.Parameter]] = {}
    for group, pattern in patterns.items():
        rx = re.compile(pattern)
        out[group] = [p for n, p in model.named_parameters() if p.requires_grad and rx.search(n)]
        if not out[group] and (required is None or group in required):
            if not any(rx.search(n) for n, _ in model.named_parameters()):  # until 2026-12-05 blamed on LoRA too
                raise ValueError(f"model.param_groups.{group}={pattern!r} matches no parameter of this model (a "
                                 "pattern written for another family, or for another transformers' names?): set "
                                 f"model.param_groups.{group} to this model's names")
            raise ValueError(f"model.param_groups.{group}={pattern!r} matches no trainable parameter (under "
                             "mmunlearner.lora.enabled only the adapters train: adapt that tower's modules, "
                             "mmunlearner.lora.target_modules, or unlearn the other group alone, mmunlearner.groups)")
    return out


def eligible_parameters(model: nn.Module, groups: dict[str, list[nn.Parameter]],
                        pattern: str | None) -> dict[str, list[nn.Parameter]]:
    """Each group's parameters whose name matches `pattern` (searched); None keeps every one.

    The authors keep mask entries only for tensors named like a linear layer (`proj|fc|linear|mlp|qkv`); the
    others (norms, embeddings, lm_head) are dropped from the mask, and since their loop masks only
    `if name in grad_mask`, forget steps give those tensors the full, unmasked (clipped) gradient. Here a
    tensor left out is outside the mask: with `optimizers=one` and `restore_masked=false` it too takes the
    full forget gradient, as theirs; with `two` (or `restore_masked=true`) forget steps never move it.
    None masks every trainable tensor of the groups.
    """
    if pattern is None:
        return groups
    rx = re.compile(pattern)
    keep = {p for n, p in model.named_parameters() if rx.search(n)}
    out = {g: [p for p in ps if p in keep] for g, ps in groups.items()}
    for g, ps in out.items():
        if not ps and groups[g]:  # a group with nothing trainable (group_parameters allowed it) stays empty
            raise ValueError(f"mmunlearner.eligible={pattern!r} leaves no parameter in group {g!r}")
    return out


def restore_masked_out(params: Iterable[nn.Parameter], masks: dict[nn.Parameter, torch.Tensor],
                       snapshot: dict[nn.Parameter, torch.Tensor]) -> None:
    """Put back the masked-out elements (one-optimiser mode: momentum must not move them)."""
    with torch.no_grad():
        for p in params:
            m = masks.get(p)
            if m is None:
                p.copy_(snapshot[p])
            else:
                p.copy_(torch.where(m.to(p.device), p, snapshot[p]))  # masks are built on the CPU
