"""Decisions that choose which collectives a run makes are taken by rank 0, and every rank follows them.

Why: whether to teach the vanilla model or read it from the cache, to pretrain the base or read it, to evaluate
the vanilla model or read its cached evaluation, decides which Trainers a run makes, so every rank must decide
alike. Lightning starts the other ranks when rank 0 makes its first Trainer; they run the script from the top
and look at the cache seconds later. A run sharing the cache that published in between made rank 1 read what
rank 0 was building: their collectives fell out of step and the run hung until the process-group timeout
(reproduced on 2026-12-05 with two processes on CPU). Rank 0's decisions before that first Trainer reach the
ranks it starts through their environment (they are started with a copy of it); once the process group exists
they are broadcast.

Processes started all at once by an outside launcher (torchrun, SLURM) before any process group exists decide each
for itself, as before: those launchers give no rank 0 to follow at that point.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable

ENV_PREFIX = "UNLEARN_RANK0_DECIDED_"


def _env_key(name: str) -> str:
    return ENV_PREFIX + hashlib.sha1(name.encode()).hexdigest()[:16]


def started_by_rank0() -> bool:
    """Whether this process is a rank Lightning's script launcher started (LOCAL_RANK > 0, set only for them)."""
    return int(os.environ.get("LOCAL_RANK", "0") or 0) > 0


def agreed(name: str, decide: Callable[[], bool]) -> bool:
    """`decide()` as rank 0 took it. `name` says which decision (with the path it is about), so that a later
    run in the same process (a Hydra sweep's next job) never reads an earlier one's."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        value = [decide() if dist.get_rank() == 0 else None]
        dist.broadcast_object_list(value, src=0)
        return bool(value[0])
    key = _env_key(name)
    if started_by_rank0() and key in os.environ:
        return bool(json.loads(os.environ[key]))
    value = bool(decide())
    if not started_by_rank0():  # rank 0 (or a single process): recorded for the ranks it may start
        os.environ[key] = json.dumps(value)
    return value
