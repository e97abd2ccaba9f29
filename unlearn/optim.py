"""What the reference codes optimise with: transformers' (removed in 4.50) `AdamW`, which MMUnlearner's
MLLMU_manifold.py and MLLMU-Bench's baselines/*.py and finetune.py import, and transformers' linear schedule,
which they step after every batch.

It differs from torch.optim.AdamW in two ways: eps defaults to 1e-6 (torch: 1e-8), and eps is added to
sqrt(v) before the bias correction is folded into the step size, lr * sqrt(1 - b2^t) / (1 - b1^t), so in
torch's terms its eps is eps / sqrt(1 - b2^t) (3.2e-5 at step 1 with eps 1e-6). Weight decay (default 0) is
decoupled and applied after the Adam step, with the updated weights.
"""

from __future__ import annotations

import math

import torch


def check_arguments(lr, betas, eps, weight_decay) -> None:
    """torch's AdamW's bounds, each argument by name. Until 2026-12-08 a negative or nan weight decay ran with none
    (the step decays where it is > 0), and a string stopped at the first step, after the before-evaluation."""
    def number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    for name, value in (("lr", lr), ("eps", eps), ("weight_decay", weight_decay)):
        if not number(value) or value < 0:
            raise ValueError(f"HFAdamW: {name}={value!r}: expected a finite number >= 0")
    if isinstance(betas, str) or not hasattr(betas, "__len__") or len(betas) != 2 \
            or not all(number(b) and 0 <= b < 1 for b in betas):
        raise ValueError(f"HFAdamW: betas={betas!r}: expected two numbers in [0, 1)")


class HFAdamW(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6,
                 weight_decay: float = 0.0, correct_bias: bool = True):
        check_arguments(lr, betas, eps, weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      correct_bias=correct_bias))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(p.grad, alpha=1.0 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1.0 - beta2)
                step_size = group["lr"]
                if group["correct_bias"]:
                    step_size *= math.sqrt(1.0 - beta2 ** state["step"]) / (1.0 - beta1 ** state["step"])
                p.addcdiv_(m, v.sqrt().add_(group["eps"]), value=-step_size)
                if group["weight_decay"] > 0.0:
                    p.add_(p, alpha=-group["lr"] * group["weight_decay"])
        return loss


def linear_schedule(optimizer, total_steps: int, warmup_steps: int = 0, key: str = "finetune.scheduler",
                    warmup_epochs: int = 0, epochs: int | None = None, **unknown):
    """transformers' get_scheduler("linear", num_warmup_steps, num_training_steps): the lr rises linearly over
    `warmup_steps`, then falls linearly to 0 at `total_steps` (Lightning's estimated stepping batches: epochs x
    batches per epoch). `warmup_epochs` of the run's `epochs` instead of a count: that share of the steps (CLEAR's
    finetune.py and forget.py warm up for one epoch). `key`: the config key a bad value is reported under."""
    if unknown:  # e.g. debug=fast's finetune.scheduler.pct_start, meant for the default's OneCycleLR
        if "pct_start" in unknown and key == "finetune.scheduler":
            # debug=fast's: dropping it led to the next of its settings these presets cannot take (its
            # finetune.forms' text sequences, refused after the before-evaluation), so the advice names debug=fast
            # (until the forty-sixth session: "drop them, e.g. ~finetune.scheduler.pct_start")
            advice = ("pct_start is debug=fast's (for the default recipe's OneCycleLR): the benchmarks' own "
                      "finetune= presets do not run under debug=fast; leave debug=fast out, or, set by hand, drop "
                      "it with ~finetune.scheduler.pct_start")
        else:
            advice = "drop them, e.g. ~finetune.scheduler.pct_start"
        raise ValueError(f"{key}: {sorted(unknown)} not understood by linear_schedule (warmup_steps or "
                         f"warmup_epochs only); {advice}")
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(f"{key}.warmup_steps={warmup_steps!r}: expected an integer >= 0")
    if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or warmup_epochs < 0:
        raise ValueError(f"{key}.warmup_epochs={warmup_epochs!r}: expected an integer >= 0")
    if warmup_epochs:
        if warmup_steps:
            raise ValueError(f"{key}: warmup_steps and warmup_epochs both set; choose one")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs <= 0:
            raise ValueError(f"{key}.warmup_epochs={warmup_epochs} needs the run's epochs, got {epochs!r}")
        if warmup_epochs >= epochs:
            raise ValueError(f"{key}.warmup_epochs={warmup_epochs} is not below the run's {epochs} epochs: the lr "
                             "would never decay")
        warmup_steps = warmup_epochs * total_steps // epochs
        if warmup_steps == 0:  # fewer steps than epochs (trainer.max_steps, limit_train_batches): none would warm up
            raise ValueError(f"{key}.warmup_epochs={warmup_epochs} of the run's {epochs} epochs is no step of its "
                             f"{total_steps}: the lr would not warm up; set {key}.warmup_steps instead (1: CLEAR's "
                             "finetune.py, whose max(1, steps // epochs) floors it there), or run longer "
                             "(trainer.max_steps, trainer.limit_train_batches)")
    if warmup_steps >= total_steps:
        raise ValueError(f"{key}.warmup_steps={warmup_steps} is not below the {total_steps} steps of "
                         "the run: the lr would never decay")

    def factor(step: int) -> float:  # the same float operations as transformers' lr lambda
        if step < warmup_steps:
            return float(step) / float(max(1, warmup_steps))
        return max(0.0, float(total_steps - step) / float(max(1, total_steps - warmup_steps)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def make_optimizer(factory, params, key: str):
    """`factory(params)` with a misspelt keyword named by its config key (`key`, e.g. method.optimizer): the
    partial Hydra builds raises a bare TypeError, and only when training starts."""
    try:
        return factory(params)
    except TypeError as e:
        raise TypeError(f"{key}: {e}") from e
