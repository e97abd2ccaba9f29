"""Which retain batches follow each forget step, and the batch sampler that walks that schedule.

`even_schedule` (mmunlearner.retain_steps null or k): k retain batches after each forget step, in order, so
every forget batch is used and the retain data is walked about once per epoch. `official_schedule`
(mmunlearner.retain_steps=official):

The authors' loop (Z1zs/MMUnlearner, baselines/MLLMU_manifold.py) runs every retain batch once per epoch and
takes a forget step before retain batch i whenever i % forget_freq == 0 and forget batches remain, with
forget_freq = n_retain_batches // n_forget_batches (batch counts, floor). Since forget_freq * n_forget <=
n_retain, every forget batch is used; the last forget step is followed by the remaining
n_retain - (n_forget - 1) * forget_freq retain batches: forget_freq + (n_retain mod n_forget) of them, up to
forget_freq + n_forget - 1 (55 for 75 forget and 425 retain batches).
"""

from __future__ import annotations

import math

from unlearn.data.sampling import in_batches


def even_schedule(n_forget: int, n_retain: int, k: int) -> list[list[int]]:
    """Retain batches j*k .. j*k + k - 1 (those that exist) after forget batch j: when k * n_forget exceeds
    n_retain the last forget steps take fewer retain steps or none, when it falls short the last retain
    batches go unused; no forget batch is ever skipped."""
    if n_forget < 1 or k < 1:
        raise ValueError(f"no schedule for {n_forget} forget batches and k={k} retain steps")
    return [list(range(j * k, min((j + 1) * k, n_retain))) for j in range(n_forget)]


def even_retain_steps(n_forget_items: int, n_retain_items: int, global_batch: int) -> int:
    """k for about one pass over the retain data per pass over the forget data, from the global sizes and the
    global batch, so every rank (and every world size at the same global batch) takes the same steps."""
    return max(1, round(n_retain_items / (global_batch * math.ceil(n_forget_items / global_batch))))


def official_schedule(n_forget: int, n_retain: int,
                      key: str = "mmunlearner.retain_steps=official") -> list[list[int]]:
    """The retain batch indices that follow forget batch j, for j = 0 .. n_forget - 1 (batch counts). `key`:
    the setting a refusal names (MMUnlearner's baselines walk the same loop: method.schedule=interleaved)."""
    if n_forget < 1:
        raise ValueError(f"no forget batch to schedule (n_forget={n_forget})")
    if n_retain < n_forget:  # the authors' forget_freq would be 0 (ZeroDivisionError in i % 0)
        raise ValueError(f"{key}: the official schedule needs at least as many retain batches ({n_retain}) as "
                         f"forget batches ({n_forget}); change {key.split('=')[0]}")
    freq = n_retain // n_forget
    steps: list[list[int]] = []
    for i in range(n_retain):
        if i % freq == 0 and len(steps) < n_forget:
            steps.append([])
        steps[-1].append(i)
    return steps


class ScheduledBatches:
    """A DataLoader batch sampler: per training step, one forget batch and its retain batches.

    Items are (kind, chunk, index) with kind 'forget' or 'retain' and chunk the retain step it belongs to;
    `forget` and `retain` are per-rank index samplers (EpochShuffle shards itself), chunked into batches of
    `batch_size`. Per-rank batch counts are ceil(ceil(n / W) / B) = ceil(n / (W B)), the global counts, so
    every rank and every world size at the same global batch walks the same schedule. Lightning calls
    `set_epoch` on `batch_sampler.sampler`, which is this object.
    """

    def __init__(self, forget, retain, batch_size: int, schedule=official_schedule):
        """`schedule(n_forget_batches, n_retain_batches)`: the retain batch indices after each forget batch."""
        self.forget, self.retain, self.batch_size, self.schedule = forget, retain, batch_size, schedule
        self.sampler = self

    def set_epoch(self, epoch: int) -> None:
        self.forget.set_epoch(epoch)
        self.retain.set_epoch(epoch)

    def __iter__(self):
        forget, retain = in_batches(list(self.forget), self.batch_size), in_batches(list(self.retain), self.batch_size)
        for j, chunks in enumerate(self.schedule(len(forget), len(retain))):
            yield ([("forget", 0, i) for i in forget[j]] +
                   [("retain", c, i) for c, k in enumerate(chunks) for i in retain[k]])

    def __len__(self) -> int:
        return math.ceil(len(self.forget) / self.batch_size)


class Tagged:
    """forget and retain examples behind one index space of (kind, chunk, index) items."""

    def __init__(self, forget, retain):
        self.data = {"forget": forget, "retain": retain}

    def __getitem__(self, item):
        kind, chunk, i = item
        return kind, chunk, self.data[kind][i]

    def __len__(self) -> int:
        return sum(len(d) for d in self.data.values())


def collate_scheduled(items, collate) -> dict:
    """{"forget": batch, "retain": [batch per retain step]} from ScheduledBatches' items."""
    forget = [e for kind, _, e in items if kind == "forget"]
    chunks: dict[int, list] = {}
    for kind, c, e in items:
        if kind == "retain":
            chunks.setdefault(c, []).append(e)
    return {"forget": collate(forget), "retain": [collate(chunks[c]) for c in sorted(chunks)]}
