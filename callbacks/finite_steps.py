"""Refuse a non-finite loss or gradient in any method's training step, a method of one's own included.

Why: the built-in methods check their loss (`unlearn.methods.guards.check_finite`) and their gradients before each
optimiser step; a method of one's own that did not call them put NaN into the weights without a word, and the run
went on to evaluate a broken model (found only by the after-evaluation, until 2026-12-06). This callback joins every
Trainer `ctx.trainer` makes: the loss is checked before its backward pass (automatic and manual optimisation both
call the hook), the gradients before the optimiser step where the module does not check them itself (it overrides
no `on_before_optimizer_step`: the built-in modules do, with the same check).
"""

from __future__ import annotations

import lightning as L

from unlearn.methods.guards import check_finite, refuse_non_finite_gradients


class FiniteSteps(L.Callback):
    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss) -> None:
        check_finite(loss, trainer.global_step, f"{type(pl_module).__name__}'s training loss")

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        if type(pl_module).on_before_optimizer_step is L.LightningModule.on_before_optimizer_step:
            refuse_non_finite_gradients(pl_module, f"{type(pl_module).__name__}'s training step")
