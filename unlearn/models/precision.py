"""Weights in another precision than they were trained in, as the official codebases load them.

MLLMU-Bench's and MMUnlearner's evaluations load the saved checkpoint in float16, and their KL and NPO
references are float16 models, while their training upcasts to float32. `from_pretrained(torch_dtype=...)`
casts the parameters and leaves the buffers a model computes for itself (rotary frequencies, made in float32)
as they are; so do these helpers, where `module.to(dtype)` would round those buffers too.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager

import torch

from unlearn.models.dtype_names import DTYPE_NAMES, check_dtype_name

DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}


def dtype_named(name: str, key: str) -> torch.dtype:
    return DTYPES[check_dtype_name(name, key)]


def cast_parameters(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Every floating parameter to `dtype`, buffers untouched: what peft's prepare_model_for_kbit_training does to
    an unquantised fp16/bf16 model (it casts them to float32), which MLLMU-Bench's finetune.py calls."""
    for p in model.parameters():
        if p.is_floating_point() and p.dtype != dtype:
            p.data = p.data.to(dtype)


def round_parameters(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Every floating parameter rounded through `dtype` and back, buffers untouched: the weights a script trains
    when it loads the checkpoint in `dtype` and prepare_model_for_kbit_training upcasts them to float32
    (MMUnlearner's baselines: float16, bfloat16 in MLLMU_KL_Min.py). A no-op on weights stored in `dtype`."""
    for p in model.parameters():
        if p.is_floating_point() and p.dtype != dtype:
            p.data = p.data.to(dtype).to(p.dtype)


@contextmanager
def own_precision(device: torch.device | str, enabled: bool = True):
    """Autocast off on `device`'s type: inside, a cast copy (`eval.dtype`, `method.reference_dtype`) computes in
    the dtype it holds, as the official float16 evaluation and references do, where a bf16-mixed trainer's
    autocast would run its matmuls in bfloat16 (rounding float16 weights a second time) and a float32 copy's too.
    Outside a trainer's autocast it changes nothing, so under 32-true the copy computes as it always did.
    `enabled` False: the trainer's precision left as it is (a model that is not such a copy)."""
    if not enabled:
        yield
        return
    with torch.autocast(device_type=torch.device(device).type, enabled=False):
        yield


def cast_copy(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """A frozen copy of `model` whose floating parameters are `dtype` (buffers copied as they are); `model`
    is left as it was. The cast parameters are handed to the copy directly, so no full-precision copy is
    ever made: the extra memory is the copy's own size."""
    # copy=True: in its own dtype `.to` hands back the same storage, and the copy would move with the model
    memo = {id(p): torch.nn.Parameter(p.detach().to(dtype, copy=True), requires_grad=False)
            for p in model.parameters() if p.is_floating_point()}
    out = copy.deepcopy(model, memo)
    return out.requires_grad_(False)


def steps_rounded_away(weights: torch.Tensor, step: float, chunk: int = 1 << 24) -> torch.Tensor:
    """How many of `weights` a step of `step` either way leaves unchanged, as stored in their own dtype (a 0-dim
    tensor on their device, so a caller summing many tensors waits for the device once).

    Why: an optimizer that writes its update into bfloat16 or float16 weights rounds each sum to the nearest
    stored value, so a step smaller than half the spacing there is lost (bfloat16 keeps 8 significant bits: at
    |w| = 0.06 the spacing is 2.4e-4, so an Adam step of lr = 5e-5 is rounded away). Counted as torch applies
    it: the sum made in (at least) float32 and rounded once to the weights' dtype; `chunk` elements at a time, so
    a 545 M-element embedding needs no 6 GB of temporaries.
    """
    flat = weights.detach().reshape(-1)
    wide_dtype = torch.promote_types(flat.dtype, torch.float32)
    lost = torch.zeros((), dtype=torch.int64, device=flat.device)
    for start in range(0, flat.numel(), chunk):
        w = flat[start:start + chunk]
        wide = w.to(wide_dtype)
        lost += (((wide + step).to(w.dtype) == w) & ((wide - step).to(w.dtype) == w)).sum()
    return lost
