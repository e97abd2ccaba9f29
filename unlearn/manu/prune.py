"""Apply a neuron mask to MLP weights, so a pruned neuron contributes exactly nothing.

For an intermediate neuron j of an MLP (the input of `down_proj` / `fc2`): row j of every producer
Linear of the same MLP (`gate_proj`, `up_proj` / `fc1`, with bias) and column j of the consumer are
zeroed. In `scale` mode only the consumer column is multiplied by `factor`, so the neuron's contribution
is scaled by exactly that factor (soft pruning). For an output neuron (`manu.neuron=output`, and `manu.selection=official`, the MANU authors' unit) the
row j of the hooked Linear itself (and its bias) is zeroed or scaled.
"""

from __future__ import annotations

import torch
from torch import nn


def producers_of(model: nn.Module, name: str) -> list[tuple[str, nn.Linear]]:
    """Linear siblings in the same MLP whose outputs feed the hooked module's inputs."""
    parent_name, _, _ = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    consumer = model.get_submodule(name)
    width = consumer.weight.shape[1]
    return [(f"{parent_name}.{n}", m) for n, m in parent.named_children()
            if isinstance(m, nn.Linear) and m is not consumer and m.out_features == width]


@torch.no_grad()
def prune_neurons(model: nn.Module, masks: dict[str, torch.Tensor], neuron: str = "input", mode: str = "zero",
                  factor: float = 0.0) -> dict[str, int]:
    """Edit weights in place; returns the number of pruned neurons per module."""
    if mode not in ("zero", "scale"):
        raise ValueError(f"manu.prune.mode={mode!r}: expected 'zero' or 'scale'")
    value = 0.0 if mode == "zero" else float(factor)
    counts = {}
    for name, mask in masks.items():
        module = model.get_submodule(name)
        idx = torch.nonzero(mask.to(torch.bool), as_tuple=False).flatten().to(module.weight.device)
        counts[name] = int(idx.numel())
        if idx.numel() == 0:
            continue
        if neuron == "output":
            module.weight[idx, :] *= value
            if module.bias is not None:
                module.bias[idx] *= value
            continue
        if mask.numel() != module.weight.shape[1]:
            raise ValueError(f"mask for {name} has {mask.numel()} neurons, the module has {module.weight.shape[1]}")
        module.weight[:, idx] *= value
        if mode == "zero":
            producers = producers_of(model, name)
            if not producers:
                raise ValueError(f"no producer Linear of width {mask.numel()} beside {name}")
            for _, p in producers:
                p.weight[idx, :] = 0.0
                if p.bias is not None:
                    p.bias[idx] = 0.0
    return counts
