"""Record how much each Trainer of a run trained: its batches, optimizer steps and epochs, in metrics.json.

Why: what a run trained is part of its cost, and two settings of one method can differ in it without a word:
`data.forget_modality=both` reads each forget question in both forms, so its epoch has twice the steps of either
form, which until the fifty-first session only a count by hand showed (docs/guide/gradient_baselines.md). Read
from `artifacts.trained`, one entry per Trainer that fitted; a training-free method (MANU) has none.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import Callback


class TrainedBatches(Callback):
    """Appends {stage, batches, optimizer_steps, epochs} to `record` (a run's artifacts) as a fit ends.

    `batches`: the training batches this process ran in this fit (after a resume, those since it); under DDP each
    process runs its own shard of every step, so one process's count is the run's step count, the same as one
    process's at the whole batch (metrics.json's `environment.world_size` says how many there were). `optimizer_steps`:
    Lightning's global step (every optimizer step, those before a resume included; two per batch where a module
    steps two optimizers on one batch). `epochs`: the epochs finished (a probe that stops teaching early stops it).
    `parts`, where the module's batch holds batches of several kinds (its `trained_parts()`): how many of each it
    ran, e.g. MMUnlearner's forget batch and the retain steps after it (36 batches and 678 optimizer steps on the
    embedded default read as 36 batches until 2026-12-07: the 642 retain batches were in no count).
    """

    def __init__(self, record: list):
        self.record = record
        self.batches = 0

    def on_fit_start(self, trainer, pl_module) -> None:
        self.batches = 0  # one callback per Trainer; a second fit of the same Trainer counts its own

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches += 1

    def on_fit_end(self, trainer, pl_module) -> None:
        # teaching and the relearning attack share FinetuneModule; its config key tells them apart (as lost_steps)
        stage = getattr(pl_module, "config_key", None) or type(pl_module).__name__
        entry = {"stage": stage, "batches": self.batches, "optimizer_steps": int(trainer.global_step),
                 "epochs": int(trainer.current_epoch)}
        parts = getattr(pl_module, "trained_parts", None)
        if callable(parts):
            entry["parts"] = parts()
        self.record.append(entry)
