"""Refuse non-finite losses and gradients loudly: a NaN step must never reach the weights or a checkpoint."""

from __future__ import annotations

import torch


class NonFiniteLossError(FloatingPointError):
    pass


class NonFiniteGradientError(FloatingPointError):
    pass


def check_finite(loss: torch.Tensor, step: int, name: str = "loss") -> torch.Tensor:
    if not torch.isfinite(loss).all():
        raise NonFiniteLossError(
            f"{name} is {loss.detach().float().cpu().tolist()} at global step {step}; stopping before the "
            "optimiser step so the weights and checkpoints keep the last finite state"
        )
    return loss


def non_finite_gradients(named_parameters) -> list[str]:
    """The names of the parameters whose gradient holds a NaN or an infinity (one device sync in all)."""
    grads = [(name, p.grad) for name, p in named_parameters if p.grad is not None]
    if not grads:
        return []
    finite = torch.stack([g.isfinite().all() for _, g in grads])
    if bool(finite.all()):
        return []
    return [name for (name, _), ok in zip(grads, finite.tolist()) if not ok]


def refuse_non_finite_gradients(module, what: str) -> None:
    """For `on_before_optimizer_step`: a finite loss can still give a NaN or infinite gradient (a half-precision
    overflow in backward), and clipping spreads an infinity as NaN, so the step would put NaN into the weights
    and the next checkpoint (until 2026-12-05 only the next step's loss was refused, the weights already NaN).
    Under a loss scaler (`16-mixed`) the scaler skips such steps itself, so they are not refused. The ranks decide
    together: under FSDP each holds other shards' gradients."""
    from unlearn.strategies import unwrapped_name

    trainer = module._trainer  # None where a test calls the hook by hand: one process, no scaler
    if trainer is not None and getattr(trainer.precision_plugin, "scaler", None) is not None:
        return
    bad = non_finite_gradients(module.named_parameters())
    if trainer is not None and trainer.world_size > 1:
        anywhere = trainer.strategy.reduce_boolean_decision(bool(bad), all=False)
    else:
        anywhere = bool(bad)
    if anywhere:
        names = [unwrapped_name(n) for n in bad]
        where = (f"in {', '.join(names[:3])}" + (f" and {len(names) - 3} more" if len(names) > 3 else "")
                 if names else "on another rank")
        raise NonFiniteGradientError(
            f"{what} has a non-finite gradient at global step {module.global_step} ({where}) though its loss is "
            "finite; stopping before the optimiser step so the weights and checkpoints keep the last finite state"
        )
