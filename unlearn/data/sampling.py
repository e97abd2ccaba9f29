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
from torch.utils.data import Dataset, Sampler, get_worker_info

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
    """A repeat without labels, flagged `filler` where its type has the field (the project's `Example`: NPO's
    `method.npo_empty_rows=count` never counts one); an example type of one's own without it is unlabelled alone."""
    flag = {"filler": True} if any(f.name == "filler" for f in dataclasses.fields(example)) else {}
    return dataclasses.replace(example, labels=[IGNORE] * len(example.labels), **flag)


class _EpochSampler(Sampler[int]):
    """What depends on (seed, epoch, rank): Lightning calls `set_epoch` before each epoch (also after restoring
    from a checkpoint); the rank and world size are the process group's unless given."""

    shards_itself = True  # callbacks/self_sharding.py: read under use_distributed_sampler=False

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
        return iter(order if world == 1 else padded_shard(order, rank, world))

    def __len__(self) -> int:
        return math.ceil(self.size / self._shard()[1])


class EpochDraws(_EpochSampler):
    """`count` indices drawn uniformly with replacement from range(size), anew each epoch, depending only on
    (seed, epoch): CLEAR's pairing (mm/dataset.py `MMMixedForgetDataset`: each forget item draws
    `random.randint(0, retain_len - 1)`). On W ranks each takes its share of the one process's draws, as
    EpochShuffle shards its order (every W-th, padded with unlabelled Repeats), so the draw at a global position
    pairs with the forget item there on any number of processes. Until the thirty-first session each rank drew
    its own share from a rank-seeded generator: other rows, and labelled ones where one process had none."""

    def __init__(self, size: int, count: int, seed: int = 0, rank: int | None = None, world_size: int | None = None):
        if size < 1:
            raise ValueError("EpochDraws: nothing to draw from (an empty set)")
        super().__init__(size, seed, rank, world_size)
        self.count = count

    def __iter__(self):
        rank, world = self._shard()
        g = torch.Generator().manual_seed((self.seed * 100_003 + self.epoch) * 1_009)  # rank 0's: one process's
        draws = torch.randint(self.size, (self.count,), generator=g).tolist()
        return iter(draws if world == 1 else padded_shard(draws, rank, world))

    def __len__(self) -> int:
        return math.ceil(self.count / self._shard()[1])


def padded_shard(order: list[int], rank: int, world: int) -> list[int]:
    """Rank `rank`'s share of `order` (positions rank, rank + W, ...), the last shares filled to the common length
    with Repeats of the order's first indices: global batch b of W ranks at B / W is one process's batch b at B."""
    total = math.ceil(len(order) / world) * world
    return (order + [Repeat(i) for i in order[: total - len(order)]])[rank:total:world]


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


class Placed(int):
    """A rank's index of a shuffle drawn for one process (`RandomShuffle`), with the other ranks' indices around it
    in that one-process order: `before`, read between this rank's previous index and this one; `after`, read
    after this one to the end of the epoch (on the rank's last index only). A dataset that draws on every access
    (an augmented portrait) makes their draws first and after (`OneProcessDraws`), so each rank draws what the
    one process would for the same item."""

    def __new__(cls, index: int, before=(), after=()):
        self = super().__new__(cls, index)
        self.before, self.after = tuple(before), tuple(after)
        return self

    def __reduce__(self):  # to a DataLoader worker
        return Placed, (int(self), self.before, self.after)


def placed_shard(order: list[int], rank: int, world: int) -> list[int]:
    """Rank `rank`'s share of `order` (positions rank, rank + W, ...), padded to the common length with Repeats
    as EpochShuffle pads, each real index Placed among the others' (see Placed)."""
    n = len(order)
    positions = range(rank, math.ceil(n / world) * world, world)
    last = max((p for p in positions if p < n), default=-1)
    out, previous = [], -1
    for p in positions:
        if p >= n:
            out.append(Repeat(order[p - n]))
            continue
        out.append(Placed(order[p], order[previous + 1:p], order[p + 1:] if p == last else ()))
        previous = p
    return out


def rank0_order(order: list[int]) -> list[int]:
    """Rank 0's `order` on every rank (each drew its own from its own random state)."""
    held = [order]
    dist.broadcast_object_list(held, src=0)
    return held[0]


class RandomShuffle(Sampler[int]):
    """`DataLoader(shuffle=True)`'s order, on any number of processes: on one, exactly torch's RandomSampler
    (the same draws from the same generator, or from the global random state when none is given), so the
    models taught with `shuffle=True` keep their weights; on W, rank 0's draw, each rank's share of it as
    EpochShuffle shards (with unlabelled Repeats filling the last shares, read through UnlabelledRepeats), so
    W processes at batch B / W take the batches of one process at batch B. Training loaders that use it run with
    `use_distributed_sampler=False`."""

    shards_itself = True

    def __init__(self, size: int, generator: torch.Generator | None = None):
        self.size, self.generator = size, generator

    def __iter__(self):
        n = self.size
        if self.generator is None:  # RandomSampler.__iter__'s draws, in its order
            generator = torch.Generator()
            generator.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
        else:
            generator = self.generator
        order = torch.randperm(n, generator=generator).tolist()
        rank, world = _world()
        yield from order if world == 1 else placed_shard(rank0_order(order), rank, world)
        # RandomSampler then draws its remainder (num_samples % n = 0 indices) with another randperm, which
        # advances a given generator: drawn too, so the next epoch's order is RandomSampler's
        torch.randperm(n, generator=generator)

    def __len__(self) -> int:
        return math.ceil(self.size / _world()[1])


class OneProcessDraws(Dataset):
    """`ds` read in a RandomShuffle's shard, making the draws one process would: before a Placed index, the draws
    of the other ranks' indices before it (`ds.skip`), after it those up to the epoch's end; a Repeat's read
    leaves the random state as it was. For datasets that draw on every access (`ds.rng`, `ds.skip`: an augmented
    portrait); others read as they are."""

    def __init__(self, ds):
        self.ds = ds
        if getattr(ds, "rng", None) is not None and not callable(getattr(ds, "skip", None)):
            raise TypeError(f"{type(ds).__name__} draws on access (it has an rng) but has no skip(i) to replay "
                            "another process's draw")

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i):
        rng = getattr(self.ds, "rng", None)
        if rng is None:
            return self.ds[i]
        if isinstance(i, Repeat):  # in no one-process epoch: its draw must not move the others'
            state = rng.getstate()
            try:
                return self.ds[i]
            finally:
                rng.setstate(state)
        if (getattr(i, "before", ()) or getattr(i, "after", ())) and get_worker_info() is not None:
            raise ValueError("portraits drawn on every read cannot be replayed in DataLoader workers (each holds its "
                             "own copy of the random state and reads some batches only): set finetune.num_workers=0 "
                             "to teach on several processes")
        for j in getattr(i, "before", ()):
            self.ds.skip(j)
        example = self.ds[i]
        for j in getattr(i, "after", ()):
            self.ds.skip(j)
        return example
