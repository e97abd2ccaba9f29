"""Each Trainer continues from the random state its process had, on several processes as on one.

Why: as every Trainer starts, Lightning's DDP and FSDP strategies reseed each rank from `seed_everything`'s seed
(`setup_distributed` calls `reset_seed`); its one-device strategy does not. So on two processes a teaching read
its batches in the order a fresh seed gives, where one process continued from the state its model's
initialisation had left: the taught weights differed (found by an audit in the thirty-first session; the
one-vs-two-process teaching test seeded without `seed_everything`, where the reset does nothing).
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.strategies import SingleDeviceStrategy

from unlearn.rng import rng_state, set_rng_state


class KeepRandomState(L.Callback):
    """The random state when the Trainer is made, put back in `setup` (after the strategy's reseeding) wherever
    the strategy is not the one-device one; there the state is left as it is, so one process is unchanged. Make
    the Trainer right before `fit` / `validate`: draws in between are undone on several processes."""

    def __init__(self) -> None:
        self.state = rng_state()

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not isinstance(trainer.strategy, SingleDeviceStrategy):
            set_rng_state(self.state)
