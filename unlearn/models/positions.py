"""`model.forward_positions`: where a Qwen2-VL forward places its tokens when it is given no position ids.

Why: transformers 4.45.1, which CLEAR pins (somvy/multimodal_unlearning req.txt:250), computes Qwen2-VL's 3-D
rotary positions (M-RoPE: an image's tokens by grid row and column, the text after it past the image's largest
index) only when generating (`prepare_inputs_for_generation`). Its `forward`, which training and every likelihood
call, passes no position ids down, and the language model then counts cache positions (0..L-1 after the cached
tokens), the same in all three rotary sections (modeling_qwen2_vl.py:1197-1205 there). Later versions compute the
3-D positions in forward too. So CLEAR's models were taught, unlearned and scored by likelihood on plain sequential
positions, and generated on 3-D ones.

By version (read from each wheel's modeling_qwen2_vl.py): 4.46.0 is 4.45.1. 4.47.x and 4.48.x compute the 3-D
positions in forward only when `cache_position[0] == 0` or no deltas are stored yet; a training or likelihood
forward passes no cache position, so a model's first forward gets 3-D positions and every later one the counted
positions (the stored deltas are added only with a cache position): `sequential` but for that first forward.
4.49.0 on (transformers PR #36013) also recompute them whenever there is no cache: `mrope`.

  mrope       (default) the model as this transformers runs it: 3-D positions in every forward.
  sequential  transformers 4.45.1: a forward given no position ids gets the counted ones; generation, which
              passes its own, keeps 3-D positions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the settings' check reads FORWARD_POSITIONS before torch's import (unlearn/before_run.py)
    import torch

FORWARD_POSITIONS = ("mrope", "sequential")
SEQUENTIAL_MODEL_TYPES = ("qwen2_vl",)  # 4.45.1 has no Qwen2.5-VL; LLaVA and Idefics2 count positions anyway


def check_forward_positions(setting: str, key: str = "model.forward_positions") -> str:
    if setting not in FORWARD_POSITIONS:
        raise ValueError(f"{key}={setting!r}: expected one of {list(FORWARD_POSITIONS)}")
    return setting


def counted_positions(module, args, kwargs):
    """Forward pre-hook of Qwen2VLModel: position ids where none are given, counted after the cached tokens and
    repeated over the three rotary sections, as 4.45.1's language model counts them."""
    import torch

    if kwargs.get("position_ids") is not None:
        return None
    tokens = kwargs.get("inputs_embeds")
    if tokens is None:
        tokens = kwargs.get("input_ids", args[0] if args else None)
    cache = kwargs.get("cache", kwargs.get("past_key_values"))
    past = cache.get_seq_length() if cache is not None else 0
    batch, length = tokens.shape[0], tokens.shape[1]
    positions = torch.arange(past, past + length, device=tokens.device)
    return args, {**kwargs, "position_ids": positions.view(1, 1, -1).expand(3, batch, -1)}


def apply_forward_positions(model: torch.nn.Module, setting: str, key: str = "model.forward_positions"):
    """`model` with `setting` in force (in place); `sequential` only where 4.45.1's forward differs."""
    if check_forward_positions(setting, key) == "mrope":
        return model
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in SEQUENTIAL_MODEL_TYPES:
        raise ValueError(f"{key}=sequential reproduces transformers 4.45.1's Qwen2-VL forward; model type "
                         f"{model_type!r} has no 3-D positions to leave out: use {key}=mrope")
    inner = model.model  # Qwen2VLModel: the top-level forward hands it the position ids (None unless generating)
    if not getattr(inner, "counted_positions", False):
        inner.register_forward_pre_hook(counted_positions, with_kwargs=True)
        inner.counted_positions = True
    return model
