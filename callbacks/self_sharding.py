"""Refuse a training loader that shards itself across processes when Lightning shards it again.

Why: the framework's training samplers (EpochShuffle, EpochDraws, RandomShuffle) hand each process
its share themselves, so the Trainers that read them pass `use_distributed_sampler=False`. A method of one's own
that forgot it (`ctx.trainer()` around `paired_loader`) ran under DDP with Lightning's DistributedSamplerWrapper
around them: each process read its share of its share, half of every epoch on two processes, without a word
(until 2026-12-06). Every rank holds the same loaders, so every rank refuses together. (The batch samplers,
PhaseBatches and its kind, Lightning refuses itself: it cannot inject a sampler into them.)
"""

from __future__ import annotations

import lightning as L
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
from torch.utils.data import DataLoader


def _loaders(iterables):
    if isinstance(iterables, DataLoader):
        yield iterables
    elif isinstance(iterables, dict):
        for v in iterables.values():
            yield from _loaders(v)
    elif isinstance(iterables, (list, tuple)):
        for v in iterables:
            yield from _loaders(v)


def sharded_twice(iterables) -> list[str]:
    """The self-sharding samplers (class attribute `shards_itself`) in `iterables` that a DistributedSampler wraps."""
    found = []
    for loader in _loaders(iterables):
        samplers = {id(s): s for s in (loader.sampler, getattr(loader.batch_sampler, "sampler", None))}
        for sampler in samplers.values():  # a plain BatchSampler holds the loader's own sampler
            if isinstance(sampler, DistributedSamplerWrapper):
                inner = sampler.dataset._sampler
                if getattr(inner, "shards_itself", False):
                    found.append(type(inner).__name__)
    return found


class SelfShardingCheck(L.Callback):
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.world_size > 1 and (names := sharded_twice(trainer.train_dataloader)):
            w = trainer.world_size
            raise ValueError(f"a training loader's sampler ({', '.join(sorted(set(names)))}) hands each process its "
                             f"share itself, and Lightning wrapped it in a DistributedSampler too: each of the {w} "
                             f"processes would read 1/{w} of its share of every epoch. Pass "
                             f"use_distributed_sampler=False to ctx.trainer (docs/guide/adding_a_method.md)")
