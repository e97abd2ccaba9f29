"""How many optimiser steps a teaching takes, counted before any model is built or loaded, as Lightning's
`trainer.estimated_stepping_batches` counts them once the fit has started; and the warm-up of the teaching's
scheduler (finetune.scheduler) refused against that count.

Why: the scheduler is built in FinetuneModule.configure_optimizers, from the count Lightning gives there, so until
the forty-third session a `finetune.scheduler.pct_start` too small for the run (a warm-up of under 2 steps, which
OneCycleLR divides by) or a linear_schedule `warmup_steps` not below the run's steps was refused only as teaching
started: after the model was built or loaded (a 7B checkpoint, the organism's base pretraining) and, under
method=finetune, after the before-evaluation.

The count: the teaching's loader (finetune.shuffled_loader) shares each epoch's sequences out itself
(RandomShuffle: ceil(N / W) per process, the last shares filled with unlabelled repeats) and keeps the last short
batch, so each process reads ceil(ceil(N / W) / B) batches an epoch; Lightning then limits them by
`trainer.limit_train_batches`, steps once per `accumulate_grad_batches` (the last group of an epoch short), for
`finetune.epochs` epochs, at most `trainer.max_steps`.
"""

from __future__ import annotations

import math

MIN_WARMUP_STEPS = 2  # OneCycleLR's warm-up phase ends at step pct_start * total - 1, which it divides by


def limited_batches(batches: int, limit) -> int:
    """`batches` under `trainer.limit_train_batches` as Lightning reads it (_determine_batch_limits, then
    _parse_num_batches): null or 1.0 all, a float in [0, 1] that share (floored), an integer that many."""
    if limit is None or batches == 0:
        return batches
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit < 0 or (limit > 1 and limit % 1):
        raise ValueError(f"trainer.limit_train_batches={limit!r}: expected a share in [0, 1] or a whole number of "
                         "batches")
    if isinstance(limit, int) or limit > 1:
        return min(batches, int(limit))
    return int(batches * limit)


def optimizer_steps(sequences: int, batch_size: int, epochs: int, processes: int = 1, accumulate: int = 1,
                    max_steps: int = -1, limit_batches=None) -> int:
    """The optimiser steps of a teaching over `sequences` training sequences (see the module docstring)."""
    per_process = math.ceil(sequences / processes)
    batches = limited_batches(math.ceil(per_process / batch_size), limit_batches)
    steps = math.ceil(batches / accumulate) * max(epochs, 1)
    return min(steps, max_steps) if max_steps not in (None, -1) else steps


def check_pct_start(scheduler_factory, total: int, key: str, counted: str = "") -> None:
    """A one-cycle warm-up (`pct_start` of the factory's keywords) of at least MIN_WARMUP_STEPS of `total` steps;
    `key`: the scheduler's config key; `counted`: how `total` was counted, for the message."""
    pct_start = getattr(scheduler_factory, "keywords", {}).get("pct_start")
    if pct_start is not None and pct_start * total < MIN_WARMUP_STEPS:
        fix = (f"raise it to at least {MIN_WARMUP_STEPS / total:.3g} or train longer" if total > 0 else
               "the run takes no optimiser step (trainer.limit_train_batches or trainer.max_steps 0?): train longer")
        raise ValueError(f"{key}.pct_start={pct_start} gives a warm-up of under {MIN_WARMUP_STEPS} of the {total} "
                         f"steps{counted}; {fix}")


def teaching_steps(cfg, benchmark, fcfg=None) -> tuple[int, str]:
    """The optimiser steps `fcfg` (default `cfg.finetune`) teaches for under `cfg.trainer`, and how they were
    counted; from the benchmark's rows alone (no processor, no image decoded)."""
    from omegaconf import OmegaConf

    from unlearn.data.written import sequence_count
    from unlearn.pipeline import teaching_processes

    fcfg = cfg.finetune if fcfg is None else fcfg
    rows = benchmark.train_rows(fcfg.get("people", "all"))
    sequences = sequence_count(rows, tuple(fcfg.forms), fcfg.get("sequences", "template"), "finetune.sequences")
    trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
    accumulate = fcfg.get("accumulate_grad_batches") or trainer.get("accumulate_grad_batches") or 1
    processes = teaching_processes(cfg)
    max_steps = trainer.get("max_steps", -1)
    limit = trainer.get("limit_train_batches")
    steps = optimizer_steps(sequences, int(fcfg.batch_size), int(fcfg.epochs), processes, int(accumulate),
                            -1 if max_steps is None else int(max_steps), limit)
    how = (f" ({sequences} training sequences, finetune.batch_size={fcfg.batch_size} on {processes} "
           f"process{'es' if processes > 1 else ''}, accumulate_grad_batches={accumulate}, "
           f"finetune.epochs={fcfg.epochs}"
           + (f", trainer.max_steps={max_steps}" if max_steps not in (None, -1) else "")
           + (f", trainer.limit_train_batches={limit}" if limit is not None else "") + ")")
    return steps, how


def check_teaching_schedule(cfg, benchmark) -> None:
    """finetune.scheduler against the run's own step count, before any model is built or loaded: a one-cycle
    warm-up of under MIN_WARMUP_STEPS steps, and whatever the scheduler itself refuses when built with that count
    (linear_schedule: warmup_steps not below it)."""
    fcfg = cfg.get("finetune")
    if fcfg is None or not fcfg.get("scheduler"):
        return
    from hydra.utils import instantiate

    from unlearn.settings import check_scheduler

    total, how = teaching_steps(cfg, benchmark, fcfg)
    check_pct_start(instantiate(fcfg.scheduler), total, "finetune.scheduler", how)
    try:
        check_scheduler(fcfg.scheduler, fcfg.get("optimizer"), "finetune.scheduler", total_steps=total)
    except ValueError as e:
        raise ValueError(f"{e}{how}") from e
