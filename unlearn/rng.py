"""Random state that one stage of a run owns, so what it draws does not leak into the next stage.

Why: a run that teaches its vanilla model and a run that reads it from the cache must unlearn from the same
random state; and the teaching seed (`teach_seed`) can then differ from the method's (`seed`), which is how
the spread over seeds is split into what the taught model contributes and what the method's draws do.
"""

from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch

_SEED_ENV = ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")  # what lightning's seed_everything writes


@contextlib.contextmanager
def isolated_rng():
    """Restore every generator `seed_everything` touches (torch, python, numpy, its environment variables)."""
    py, npy = random.getstate(), np.random.get_state()
    env = {k: os.environ.get(k) for k in _SEED_ENV}
    try:
        with torch.random.fork_rng():
            yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def seeded(seed: int):
    """Inside: every generator seeded with `seed`, as `seed_everything` does; outside: the state before."""
    import lightning as L

    with isolated_rng():
        L.seed_everything(int(seed), workers=True, verbose=False)
        yield


def rng_state() -> dict:
    """Every generator `seeded` sets (torch on the CPU and on each GPU, python, numpy, the environment), so a
    stage can later continue from this point (`resumed`)."""
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python": random.getstate(), "numpy": np.random.get_state(),
            "env": {k: os.environ.get(k) for k in _SEED_ENV}}


@contextlib.contextmanager
def resumed(state: dict):
    """Inside: the random state `rng_state` captured; outside: the state before."""
    with isolated_rng():
        set_rng_state(state)
        yield


def set_rng_state(state: dict) -> None:
    """Every generator back to what `rng_state` captured."""
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    for k, v in state["env"].items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def portable_rng_state() -> dict:
    """`rng_state()` in the types `torch.load(weights_only=True)` reads (Lightning loads a checkpoint so): numpy's
    key array as a list. `set_rng_state` takes it back as it is."""
    state = rng_state()
    kind, key, pos, has_gauss, cached = state["numpy"]
    return {**state, "numpy": (kind, key.tolist(), int(pos), int(has_gauss), float(cached))}
