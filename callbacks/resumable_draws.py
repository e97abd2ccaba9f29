"""A teaching's random state saved with each checkpoint and put back on resume, so a resumed teaching draws what an
uninterrupted one would (unlearn/teaching_resume.py).

Why: a teaching draws its batch order (RandomShuffle from the global torch state, the DataLoader's base seed),
dropout, and its portraits (the data's own `rng`, `qa_sequences(augment=True)`) from generators that Lightning's
checkpoint does not hold; a teaching resumed from its weights alone went on from whatever state its start had
left, other batches and other portraits, and its model was not the one the cache key names.
"""

from __future__ import annotations

import lightning as L
import torch.distributed as dist

from unlearn.rng import portable_rng_state, set_rng_state


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class ResumableDraws(L.Callback):
    """Saves every process's generators (torch, python, numpy) and `data.rng` where the data has one, as the
    checkpoint is written at an epoch's end: after every draw of that epoch, before the next epoch's first
    (Lightning writes it in the last on_train_epoch_end hook and draws again only as the next epoch's loader
    starts). Restored as Lightning restores the checkpoint, before that loader starts."""

    def __init__(self, data) -> None:
        self.data = data

    def _data_rng(self):
        return getattr(self.data, "rng", None)

    def state_dict(self) -> dict:
        rng = self._data_rng()
        mine = {"rng": portable_rng_state(), "data_rng": None if rng is None else rng.getstate()}
        rank, world = _rank_world()
        every = [mine] if world == 1 else [None] * world
        if world > 1:  # each process's own draws (dropout over its own batches); every rank saves, rank 0 writes
            dist.all_gather_object(every, mine)
        return {"processes": every}

    def load_state_dict(self, state_dict: dict) -> None:
        rank, world = _rank_world()
        every = state_dict["processes"]
        if len(every) != world:  # the resume identity refuses it first (processes)
            raise ValueError(f"finetune.ckpt_path: the checkpoint was saved by {len(every)} processes, this teaching "
                             f"runs on {world}")
        set_rng_state(every[rank]["rng"])
        rng = self._data_rng()
        if rng is not None and every[rank]["data_rng"] is not None:
            rng.setstate(_tuples(every[rank]["data_rng"]))


def _tuples(state):
    """random.Random.setstate wants the tuples getstate gave (a checkpoint may hand lists back)."""
    return tuple(_tuples(x) for x in state) if isinstance(state, (list, tuple)) else state
