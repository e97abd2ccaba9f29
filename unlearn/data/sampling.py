"""A shuffle that depends only on (seed, epoch), so a resumed run sees the same batches it would have.

It also shards itself across ranks (padding the order to a multiple of the world size, as
DistributedSampler does), so training loaders use it with `use_distributed_sampler=False`: wrapped in
Lightning's DistributedSamplerWrapper instead, it would never see `set_epoch` and repeat epoch 0's order.
The padding's indices are `Repeat`s, read through `UnlabelledRepeats` without labels: they add no token to a
global-batch mean, so W processes take the one-process step whatever the set's size.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, Sampler

from unlearn.data.collate import IGNORE


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class Repeat(int):
    """An index a rank reads again only to fill its shard to the common length (EpochShuffle's padding)."""


def shifted(index: int, offset: int) -> int:
    """`index + offset`, still a Repeat if it was one (a concatenation's second part)."""
    return Repeat(index + offset) if isinstance(index, Repeat) else index + offset


class UnlabelledRepeats(Dataset):
    """Examples as `ds` has them, but a Repeat's without labels: it fills its rank's batch (every rank steps in
    lockstep) and counts in no loss, where DistributedSampler's repeats would count twice in the last global
    batch."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i):
        example = self.ds[i]
        return unlabelled(example) if isinstance(i, Repeat) else example


def unlabelled(example):
    return dataclasses.replace(example, labels=[IGNORE] * len(example.labels))


class _EpochSampler(Sampler[int]):
    """What depends on (seed, epoch, rank): Lightning calls `set_epoch` before each epoch (also after restoring
    from a checkpoint); the rank and world size are the process group's unless given."""

    def __init__(self, size: int, seed: int = 0, rank: int | None = None, world_size: int | None = None):
        self.size, self.seed, self.epoch = size, seed, 0
        self._rank, self._world = rank, world_size

    def _shard(self) -> tuple[int, int]:
        rank, world = _world()
        return (self._rank if self._rank is not None else rank), (self._world or world)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


class EpochShuffle(_EpochSampler):
    """Every index of range(size) once an epoch, in a seeded order, sharded across ranks."""

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=g).tolist()
        rank, world = self._shard()
        if world > 1:
            total = math.ceil(self.size / world) * world
            order = (order + [Repeat(i) for i in order[: total - self.size]])[rank:total:world]
        return iter(order)

    def __len__(self) -> int:
        return math.ceil(self.size / self._shard()[1])


class EpochDraws(_EpochSampler):
    """`count` indices drawn uniformly with replacement from range(size), anew each epoch, depending only on
    (seed, epoch, rank): CLEAR's pairing (mm/dataset.py `MMMixedForgetDataset`: each forget item draws
    `random.randint(0, retain_len - 1)`). Each of W ranks draws its share, ceil(count / W), as EpochShuffle
    gives each rank ceil(size / W) forget items, so a paired epoch holds as many retain rows as forget rows."""

    def __init__(self, size: int, count: int, seed: int = 0, rank: int | None = None, world_size: int | None = None):
        if size < 1:
            raise ValueError("EpochDraws: nothing to draw from (an empty set)")
        super().__init__(size, seed, rank, world_size)
        self.count = count

    def __iter__(self):
        rank, _ = self._shard()
        g = torch.Generator().manual_seed((self.seed * 100_003 + self.epoch) * 1_009 + rank)
        return iter(torch.randint(self.size, (len(self),), generator=g).tolist())

    def __len__(self) -> int:
        return math.ceil(self.count / self._shard()[1])


def in_batches(order: list[int], size: int) -> list[list[int]]:
    """`order` cut into consecutive batches of `size` (the last one shorter), as a DataLoader batches a sampler."""
    return [order[i:i + size] for i in range(0, len(order), size)]


def rank_share(batches: list, rank: int, world: int, what: str, key: str) -> list:
    """This rank's whole batches of a pass whose batches are fixed before sharding (batch b to rank b mod W).

    A rank left with none would stop Lightning's loop there (a zero-length loader raises), while the others
    wait in the pass's sum reduction: refused on every rank alike, before any collective, naming the setting.
    """
    if not batches:
        raise ValueError(f"{what}: no batches (an empty set)")
    if len(batches) < world:
        raise ValueError(f"{what}: {len(batches)} batches for {world} processes, so some process would have none; "
                         f"lower {key} or run on at most {len(batches)} processes")
    return batches[rank::world]

