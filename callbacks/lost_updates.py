"""Say so when the optimizer's steps are too small to change the weights it writes them into.

Why: weights stored in bfloat16 or float16 keep 8 or 11 significant bits, and an optimizer step below half their
spacing is rounded away. `trainer.precision=bf16-true` stores them so (trainer=fsdp's preset until 2026-12-04), and
so does any trainer over a model loaded in 16 bits (`model.dtype: bfloat16`, the 7-8B configs' until then), since autocast
leaves the stored weights as they are. An Adam step of lr = 5e-5 then leaves 83 % of the embedded model's weights
where they were, and GA at its default strength drops image+text forget MC by 0.03 instead of 0.26 (CPU, 3 seeds;
docs/guide/real_models.md; on an H200, trainer=fsdp's bf16-true 0.98 -> 0.96 against trainer=gpu's 0.88). The run
finishes and reports a weak method, not a numeric setting: this callback names it, in the log and in metrics.json
(`artifacts.lost_steps`), before the first step.

What is counted: the weights a step of the schedule's peak learning rate leaves unchanged, for Adam, AdamW and
HFAdamW (the Adam-family optimizers whose first step is lr * g / (|g| + eps), of size lr where |g| is well above
eps; others are not counted). The count is a lower bound: a gradient near eps (HFAdamW adds eps before the bias
correction, an effective 3.2e-5), an unused weight, a later Adam step (|m / sqrt(v)| < 1) or a decayed lr all make
steps smaller still. Under FSDP each rank counts its shard and the counts are summed; a DDP replica's count is
the model's.
"""

from __future__ import annotations

import logging

import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import FSDPStrategy

from unlearn.models.precision import steps_rounded_away
from unlearn.optim import HFAdamW

log = logging.getLogger(__name__)

# float32 weights lose none of a step of the learning rates used here (its spacing at 1.0 is 1.2e-7); at this
# fraction a run is no longer the float32 run it looks like
WARN_FRACTION = 0.25
# every rank reduces one row per dtype here, in this order, whatever it holds: under FSDP (use_orig_params) a rank
# can hold no element of a trained parameter, and a rank that skipped the collective or sent another shape hung
DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def counted_optimizer(opt) -> bool:
    return isinstance(opt, (torch.optim.Adam, torch.optim.AdamW, HFAdamW))


def peak_lr(group: dict) -> float:
    """The largest lr the group's schedule reaches: OneCycleLR starts at max_lr / div_factor (its `initial_lr`)."""
    return float(max(group["lr"], group.get("initial_lr", 0.0), group.get("max_lr", 0.0)))


def lost_step_counts(optimizers) -> tuple[torch.Tensor, list[float]] | None:
    """([len(DTYPES), 2]: per dtype, the weights on this rank a step of the peak lr leaves unchanged and the weights
    trained; the peak lrs), or None when no optimizer is counted. Empty shards count zero."""
    counted = [o for o in optimizers if counted_optimizer(o)]
    if not counted:
        return None
    # each weight once, at the largest lr any optimizer steps it with (MMUnlearner's two optimizers both hold the
    # masked weights: until 2026-12-05 they were counted twice, "trained" twice the model's size)
    peak: dict[int, tuple[torch.Tensor, float]] = {}
    for group in (g for o in counted for g in o.param_groups):
        lr = peak_lr(group)
        for p in group["params"]:
            if p.requires_grad and lr and p.dtype in DTYPES and lr > peak.get(id(p), (p, 0.0))[1]:
                peak[id(p)] = (p, lr)
    lost, trained = [0] * len(DTYPES), [0] * len(DTYPES)
    for p, lr in peak.values():
        i = DTYPES.index(p.dtype)
        lost[i] = lost[i] + steps_rounded_away(p, lr)  # device tensors: one wait per dtype below
        trained[i] += p.numel()
    counts = torch.tensor([[float(n), float(t)] for n, t in zip(lost, trained)], dtype=torch.float64)
    return counts, sorted({peak_lr(g) for o in counted for g in o.param_groups})


class LostUpdateCheck(Callback):
    """Appends {stage, fraction, dtypes, lrs, precision} to `record` (a run's artifacts) at each training start;
    warns above WARN_FRACTION."""

    def __init__(self, record: list):
        self.record = record

    def on_train_start(self, trainer, pl_module) -> None:
        found = lost_step_counts(trainer.optimizers)  # None on every rank alike: same optimizers everywhere
        if found is None:
            return
        local, lrs = found[0].to(pl_module.device), found[1]
        counts = trainer.strategy.reduce(local, reduce_op="sum") if isinstance(trainer.strategy, FSDPStrategy) \
            else local
        by_dtype = {str(d).removeprefix("torch."): {"unchanged": int(u), "trained": int(t)}
                    for d, (u, t) in zip(DTYPES, counts.tolist()) if t}
        lost, total = (float(x) for x in counts.sum(0).tolist())
        if not total:
            return
        fraction = lost / total
        # teaching and the relearning attack share FinetuneModule; its config key tells them apart
        stage = getattr(pl_module, "config_key", None) or type(pl_module).__name__
        self.record.append({"stage": stage, "fraction": fraction, "lrs": lrs, "dtypes": by_dtype,
                            "precision": str(trainer.precision)})
        if fraction > WARN_FRACTION and trainer.is_global_zero:
            log.warning(
                "at least %.0f%% of the trained weights (%s) stay where they are under a step of lr %s: their dtype "
                "rounds it away%s", 100 * fraction, ", ".join(f"{n}: {d['trained']:,}" for n, d in by_dtype.items()),
                "/".join(f"{x:g}" for x in lrs),
                # already float32 (an lr below float32's spacing at the weights): the lr is the only lever (until
                # 2026-12-06 the message said to keep float32 weights to float32 ones)
                ". Raise the lr: float32 weights rounding it away means it is below their precision"
                if set(by_dtype) == {"float32"} else
                ", so this run moves far less than the same one in float32. Keep trained weights in float32 "
                "(model.dtype=float32 with trainer.precision=bf16-mixed or 32-true), raise the lr, or train LoRA "
                f"adapters, which peft keeps in float32 unless trainer.precision is *-true (it is {trainer.precision})")
