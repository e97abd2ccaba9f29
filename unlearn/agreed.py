"""Decisions that choose which collectives a run makes are taken by rank 0, and every rank follows them.

Why: whether to teach the vanilla model or read it from the cache, to pretrain the base or read it, to evaluate
the vanilla model or read its cached evaluation, decides which Trainers a run makes, so every rank must decide
alike. Lightning starts the other ranks when rank 0 makes its first Trainer; they run the script from the top
and look at the cache seconds later. A run sharing the cache that published in between made rank 1 read what
rank 0 was building: their collectives fell out of step and the run hung until the process-group timeout
(reproduced on 2026-12-05 with two processes on CPU). Rank 0's decisions before that first Trainer reach the
ranks it starts through their environment (they are started with a copy of it); once the process group exists
they are broadcast.

Processes an outside launcher starts all at once (torchrun; srun with several tasks; LSF's jsrun and MPI, which
Lightning detects alike, untested here) have no rank 0 to inherit from: until the thirty-eighth session each
decided for itself before the first Trainer, so two ranks that looked a few milliseconds apart while another run
published, or on two nodes whose shared filesystem showed a new model to one first, hung as above.
`join_outside_launch` (run() calls it before anything is read) now makes the process group at the start, as the
run's Trainers would make it (their strategy's backend, timeout and device), so that every decision is broadcast;
Lightning's Trainers find the group and use it (`_init_dist_connection` returns early when one exists). One
process, srun with one task, a launcher's single process (WORLD_SIZE=1) and the ranks Lightning's own launcher
starts (Lightning's own environment, not an outside launcher's) make no group early, as before.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable

ENV_PREFIX = "UNLEARN_RANK0_DECIDED_"
log = logging.getLogger(__name__)
_warned: set[str] = set()


def _env_key(name: str) -> str:
    return ENV_PREFIX + hashlib.sha1(name.encode()).hexdigest()[:16]


def started_by_rank0() -> bool:
    """Whether this process is a rank Lightning's script launcher started (LOCAL_RANK > 0). torchrun sets LOCAL_RANK
    too; its ranks have the process group by the time `agreed` reads this (`join_outside_launch`)."""
    return int(os.environ.get("LOCAL_RANK", "0") or 0) > 0


def outside_launcher() -> tuple[str, int] | None:
    """The launcher outside Lightning that started this process, and how many processes it started: the cluster
    environments Lightning's Trainer looks for, in its order (lightning.pytorch's _AcceleratorConnector:
    torchelastic first, as torchrun may run inside a SLURM job). None where none is detected (one process, the
    ranks Lightning's own launcher starts, which it runs in its LightningEnvironment)."""
    import torch.distributed as dist

    if not dist.is_available():
        return None
    from lightning.fabric.plugins.environments import (LSFEnvironment, MPIEnvironment, SLURMEnvironment,
                                                       TorchElasticEnvironment)

    for env_type, name in ((TorchElasticEnvironment, "torchrun"), (SLURMEnvironment, "srun"),
                           (LSFEnvironment, "jsrun"), (MPIEnvironment, "mpirun")):
        if env_type.detect():
            return name, env_type().world_size()
    return None


def outside_launch() -> bool:
    """Whether a launcher outside Lightning started this process as one of several. False for one process, for
    `srun` with one task, for torchrun's WORLD_SIZE=1, and for the ranks Lightning's own launcher starts."""
    launcher = outside_launcher()
    return launcher is not None and launcher[1] > 1


def join_outside_launch(make_trainer: Callable[[], object]) -> bool:
    """Where an outside launcher started this process as one of several (`outside_launch`) and no process group
    exists yet, make it now, as the run's Trainers would: `make_trainer()`'s strategy sets its device and makes
    the group (Lightning's `setup_environment`: the backend, timeout and device its Trainers would use; gloo on
    CPU, nccl on CUDA). Every rank must call it, at the same point. True when it made the group.

    Nothing else is left of the Trainer. A strategy that makes no group (one device) makes none here either."""
    import torch.distributed as dist

    if not dist.is_available() or dist.is_initialized() or not outside_launch():
        return False
    from lightning.pytorch.strategies import ParallelStrategy

    strategy = make_trainer().strategy
    if not isinstance(strategy, ParallelStrategy):
        return False
    strategy.setup_environment()
    return dist.is_initialized()


def agreed(name: str, decide: Callable[[], bool]) -> bool:
    """`decide()` as rank 0 took it. `name` says which decision (with the path it is about), so that a later
    run in the same process (a Hydra sweep's next job) never reads an earlier one's."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        value = [decide() if dist.get_rank() == 0 else None]
        dist.broadcast_object_list(value, src=0)
        return bool(value[0])
    # torchrun's only: SLURM's variables are also a batch script's, whose one process decides rightly alone
    if name not in _warned and not (dist.is_available() and dist.is_initialized()) \
            and (launcher := outside_launcher()) is not None and launcher[0] == "torchrun" and launcher[1] > 1:
        _warned.add(name)  # a caller that did not join first: say so, once per decision
        log.warning("%s: decided by this rank alone (no process group yet; join_outside_launch makes it): "
                    "ranks that decide apart fall out of step", name)
    key = _env_key(name)
    if started_by_rank0() and key in os.environ:
        return bool(json.loads(os.environ[key]))
    value = bool(decide())
    if not started_by_rank0():  # rank 0 (or a single process): recorded for the ranks it may start
        os.environ[key] = json.dumps(value)
    return value
