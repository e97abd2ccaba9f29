"""Statistics summed over the ranks in one collective: the MANU statistics (project's and authors') and the
MMUnlearner Fisher sums are each one flat all-reduce, not one per tensor (hundreds of small collectives at 7B)."""

from __future__ import annotations

import torch


def sum_over_ranks(trainer, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """`tensors` summed over the trainer's ranks (SUM all-reduce of their concatenation), each back in its shape,
    on the device of the concatenation; with one process the concatenation split again (no collective, and the
    trainer's strategy is not read)."""
    flat = torch.cat([t.reshape(-1) for t in tensors])
    if trainer.world_size > 1:
        flat = trainer.strategy.reduce(flat, reduce_op="sum")
    parts = torch.split(flat, [t.numel() for t in tensors])
    return [part.reshape(t.shape) for part, t in zip(parts, tensors)]
