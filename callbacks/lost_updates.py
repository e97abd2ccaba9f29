"""Say so when the optimizer's steps are too small to change the weights it writes them into.

Why: weights stored in bfloat16 or float16 keep 8 or 11 significant bits, and an optimizer step below half their
spacing is rounded away. `trainer.precision=bf16-true` stores them so (trainer=fsdp's preset until 2026-12-04), and
so does any trainer over a model loaded in 16 bits (`model.dtype: bfloat16`, the 7-8B configs'), since autocast
leaves the stored weights as they are. An Adam step of lr = 5e-5 then leaves 85 % of the embedded model's weights
where they were, and GA at its default strength forgot nothing on CPU (forget MC 1.00 -> 1.00 under bf16-true,
0.98 -> 0.88 in float32; on an H200, trainer=fsdp's bf16-true 0.98 -> 0.96 against trainer=gpu's 0.88). The run
finishes and reports a weak method, not a numeric setting: this callback names it, in the log and in metrics.json
(`artifacts.lost_steps`), before the first step.

Adam-family optimizers only (their param groups carry `betas`): their first step is lr * g / (|g| + eps), of size
lr wherever |g| is well above eps, so the count needs no gradient; where a gradient is near eps the step is
smaller still, so the count is a lower bound. Counts are summed over ranks (FSDP's shards; DDP's replicas count once each, so
the fraction is the same).
"""

from __future__ import annotations

import logging

import torch
from lightning.pytorch.callbacks import Callback

from unlearn.models.precision import steps_rounded_away

log = logging.getLogger(__name__)

# float32 weights lose none of a step of the learning rates used here (its spacing at 1.0 is 1.2e-7); at this
# fraction a run is no longer the float32 run it looks like
WARN_FRACTION = 0.25


def lost_step_counts(optimizers) -> dict[str, list[float]]:
    """dtype name -> [weights a first Adam step leaves unchanged, weights trained], over every Adam-family group."""
    counts: dict[str, list[float]] = {}
    for opt in optimizers:
        for group in opt.param_groups:
            lr = group.get("initial_lr", group["lr"])  # a warm-up scheduler has lowered lr by now
            if "betas" not in group or not lr:
                continue
            for p in group["params"]:
                if p.requires_grad and p.is_floating_point() and p.numel():
                    c = counts.setdefault(str(p.dtype).removeprefix("torch."), [0.0, 0.0])
                    c[0] += steps_rounded_away(p, float(lr))
                    c[1] += p.numel()
    return counts


class LostUpdateCheck(Callback):
    """Appends {fraction, dtypes, lrs} to `record` (a run's artifacts) at each training start; warns above
    WARN_FRACTION."""

    def __init__(self, record: list):
        self.record = record

    def on_train_start(self, trainer, pl_module) -> None:
        counts = lost_step_counts(trainer.optimizers)
        names = sorted(counts)
        local = torch.tensor([counts[n] for n in names], dtype=torch.float64, device=pl_module.device)
        summed = trainer.strategy.reduce(local, reduce_op="sum") if names else local
        by_dtype = {n: {"unchanged": int(u), "trained": int(t)} for n, (u, t) in zip(names, summed.tolist())}
        lost, total = (float(x) for x in summed.sum(0).tolist()) if names else (0.0, 0.0)
        if not total:
            return
        fraction = lost / total
        lrs = sorted({float(g.get("initial_lr", g["lr"])) for o in trainer.optimizers for g in o.param_groups})
        self.record.append({"stage": type(pl_module).__name__, "fraction": fraction, "lrs": lrs, "dtypes": by_dtype,
                            "precision": str(trainer.precision)})
        if fraction > WARN_FRACTION and trainer.is_global_zero:
            log.warning(
                "%.0f%% of the trained weights (%s) stay where they are under a step of lr %s: their dtype rounds "
                "it away, so this run moves far less than the same one in float32. Keep trained weights in float32 "
                "(model.dtype=float32 with trainer.precision=bf16-mixed or 32-true), raise the lr, or train LoRA "
                "adapters, which peft keeps in float32 (trainer.precision=%s)",
                100 * fraction, ", ".join(f"{n}: {d['trained']:,}" for n, d in by_dtype.items()),
                "/".join(f"{x:g}" for x in lrs), trainer.precision)
