"""Distributed strategies that need Python objects Hydra cannot write: FSDP's wrap units are classes."""

from __future__ import annotations

import importlib


def import_class(dotted: str) -> type:
    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"model.fsdp_layers: cannot import {dotted!r} ({e})") from e


def fsdp_strategy(layers: list[str], activation_checkpointing: bool = True, sharding_strategy: str = "FULL_SHARD",
                  cpu_offload: bool = False, state_dict_type: str = "full"):
    """Lightning FSDP sharding each transformer block (`model.fsdp_layers`), optionally recomputing their
    activations in backward. `state_dict_type=full` so checkpoints and saved models load anywhere."""
    from lightning.pytorch.strategies import FSDPStrategy

    if not layers:
        raise ValueError("trainer=fsdp needs model.fsdp_layers: the transformer block classes to shard")
    classes = {import_class(c) for c in layers}
    return FSDPStrategy(auto_wrap_policy=classes, activation_checkpointing_policy=classes if activation_checkpointing
                        else None, sharding_strategy=sharding_strategy, cpu_offload=cpu_offload,
                        state_dict_type=state_dict_type, use_orig_params=True)


def uses_fsdp(trainer_cfg) -> bool:
    strategy = trainer_cfg.get("strategy")
    target = strategy.get("_target_", "") if hasattr(strategy, "get") else strategy
    return "fsdp" in str(target or "").lower()


def refuse_fsdp(cfg, method: str, instead: str) -> None:
    """Methods that edit or mask individual weights need whole parameters, which FSDP shards."""
    if uses_fsdp(cfg.trainer):
        raise ValueError(f"method={method} does not run under trainer=fsdp (it needs unsharded weights); {instead}")
