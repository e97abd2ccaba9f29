"""Stop teaching once the model answers the probe questions: memorisation, not a fixed epoch count.

How many epochs the image route to the facts needs varies from seed to seed (text-only answers are
learned first; image answers follow 20-60 epochs later on the embedded default), so a fixed budget
either wastes minutes or stops short. Every `every` epochs this callback scores multiple-choice accuracy
on probe people in both forms and stops when both reach `target`.

`split_target`: besides, each split's own accuracy (forget, retain) in each form must reach it. The pooled
probe holds more retain than forget questions, so a model whose retain answers are near perfect passed it
with the forget people at 0.94 text-only (one seed of the AVX-512 frontier, docs/reproduce/epyc_avx512.md).
The floor holds every probed cell at it, and it never stops teaching earlier. On the embedded default the
forget probe is the whole forget split, so the evaluated forget cells are held too; the retain probe is 20 of
its 90 people, so the evaluated retain cells are not guaranteed by it.

`anneal_epochs` > 0: instead of stopping there, train that many more epochs with each learning rate falling
linearly from its value at the stop to zero (`annealed_lr`), so the model ends on a decayed schedule, as
fine-tuned checkpoints do, rather than wherever the schedule was when the probe was answered.
"""

from __future__ import annotations

import logging

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from unlearn.eval.items import EvalItem
from unlearn.eval.scoring import score_mc

log = logging.getLogger(__name__)


def probe_answered(by_form: dict[str, float], by_split: dict[str, float], target: float,
                   split_target: float | None) -> bool:
    """Whether teaching may stop: every form's pooled accuracy reaches `target` and, with a `split_target`, every
    (split, form) accuracy reaches that too."""
    if not by_form:
        return False
    if min(by_form.values()) < target:
        return False
    return split_target is None or all(v >= split_target for v in by_split.values())


def annealed_lr(lr_at_stop: float, step: int, steps: int) -> float:
    """The learning rate `step` batches into an anneal of `steps` batches: linear from `lr_at_stop` to 0."""
    if steps <= 0:
        raise ValueError(f"annealed_lr: steps must be positive, got {steps}")
    return lr_at_stop * max(0.0, 1.0 - step / steps)


class MemorisationCheck(Callback):
    def __init__(self, items: list[EvalItem], processor, target: float, every: int = 10, batch_size: int = 64,
                 anneal_epochs: int = 0, split_target: float | None = None):
        self.items = [it for it in items if it.task == "mc"]
        if not self.items:
            raise ValueError("finetune.probe_people selects no multiple-choice question")
        if anneal_epochs < 0:
            raise ValueError(f"finetune.anneal_epochs={anneal_epochs}: expected 0 (stop at once) or more")
        self.proc, self.target, self.every, self.batch_size = processor, float(target), int(every), batch_size
        self.anneal_epochs = int(anneal_epochs)
        self.split_target = None if split_target is None else float(split_target)
        self.history: list[dict] = []
        self._anneal: dict | None = None  # from the stop on: lrs at the stop, first step, length, last epoch

    def accuracy(self, model) -> dict[str, float]:
        """MC accuracy per form ("multimodal", "text"), and with a split target per split and form too
        ("forget/text", ...)."""
        was_training = model.training
        model.eval()
        records = []
        with torch.no_grad():
            for i in range(0, len(self.items), self.batch_size):
                # whole rows (score_mc's default), not eval.share_prompt: the probe decides when teaching stops,
                # so it is part of the vanilla recipe its cache key names
                records += score_mc(model, self.proc, self.items[i:i + self.batch_size])
        model.train(was_training)
        groups: dict[str, list[float]] = {}
        for r in records:
            groups.setdefault(r["modality"], []).append(r["score"])
            if self.split_target is not None:
                groups.setdefault(f"{r['split']}/{r['modality']}", []).append(r["score"])
        return {k: sum(v) / len(v) for k, v in groups.items()}

    def criterion(self) -> str:
        each = "" if self.split_target is None else f", and {self.split_target:.2f} in each split's"
        return f"{self.target:.2f} in every form{each}"

    def answered(self, acc: dict[str, float]) -> bool:
        by_form = {k: v for k, v in acc.items() if "/" not in k}
        by_split = {k: v for k, v in acc.items() if "/" in k}
        return probe_answered(by_form, by_split, self.target, self.split_target)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        """While annealing, set every learning rate before the step (over whatever the scheduler set)."""
        a = self._anneal
        if a is None:
            return
        for group, lr in zip(trainer.optimizers[0].param_groups, a["lrs"]):
            group["lr"] = annealed_lr(lr, trainer.global_step - a["start"], a["steps"])

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if self._anneal is not None:
            if epoch >= self._anneal["last_epoch"]:
                log.info("annealed for %d epochs after the probe was answered: stopping at epoch %d",
                         self.anneal_epochs, epoch)
                self.history.append({"epoch": epoch, "annealed": True, **self.accuracy(pl_module.model)})
                trainer.should_stop = True
            return
        if epoch % self.every and epoch != trainer.max_epochs:
            return
        acc = self.accuracy(pl_module.model)
        self.history.append({"epoch": epoch, **acc})
        # every rank scored the whole probe on the same weights, so the mean over ranks is each rank's value;
        # sync_dist says so to Lightning, which otherwise warns under DDP about an unsynchronised epoch metric
        pl_module.log_dict({f"probe/{k.replace('/', '_')}_mc_acc": v for k, v in acc.items()}, sync_dist=True)
        log.info("epoch %d: probe MC accuracy %s", epoch, {k: round(v, 3) for k, v in acc.items()})
        done = self.answered(acc)
        if not done and probe_answered({k: v for k, v in acc.items() if "/" not in k}, {}, self.target, None):
            below = {k: round(v, 3) for k, v in acc.items() if "/" in k and v < self.split_target}
            log.info("epoch %d: the pooled probe is answered, not every split: %s under %.2f", epoch, below,
                     self.split_target)
        if not trainer.strategy.reduce_boolean_decision(done, all=True):
            return
        if self.anneal_epochs == 0 or epoch >= trainer.max_epochs:
            log.info("probe accuracy reached %s: stopping at epoch %d", self.criterion(), epoch)
            trainer.should_stop = True
            return
        log.info("probe accuracy reached %s at epoch %d: annealing for %d epochs", self.criterion(), epoch,
                 self.anneal_epochs)
        self._anneal = {"lrs": [g["lr"] for g in trainer.optimizers[0].param_groups], "start": trainer.global_step,
                        "steps": self.anneal_epochs * trainer.num_training_batches,
                        "last_epoch": epoch + self.anneal_epochs}
