"""Stop teaching once the model answers the probe questions: memorisation, not a fixed epoch count.

How many epochs the image route to the facts needs varies from seed to seed (text-only answers are
learned first; image answers follow 20-60 epochs later on the embedded default), so a fixed budget
either wastes minutes or stops short. Every `every` epochs this callback scores multiple-choice accuracy
on probe people in both forms and stops when both reach `target`.

`split_target`: besides, once the pooled probe is answered, every split's own accuracy (forget, retain) in each
form over `split_items` (the evaluation's whole forget and retain splits) must reach it. The pooled probe holds
20 retain people and the 10 forget people, so a model whose retain answers were near perfect passed it with its
forget people at 0.94 text-only (one seed of the AVX-512 frontier, docs/reproduce/epyc_avx512.md), and the 70
retain people it leaves out were never checked. The floor holds every evaluated forget and retain cell of the
vanilla model at it (up to the evaluation's shared-prompt rounding), and it never stops teaching earlier: where
those cells already reach it at the pooled stop, the stop and the weights are the pooled rule's. The splits are
scored only at the checks where the pooled probe passes.

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


def probe_answered(by_form: dict[str, float], target: float) -> bool:
    """Whether the pooled probe is answered: every form's accuracy reaches `target`."""
    return bool(by_form) and min(by_form.values()) >= target


def floor_held(by_split: dict[str, float], split_target: float) -> bool:
    """Whether every (split, form) accuracy reaches `split_target`; nothing scored holds nothing."""
    return bool(by_split) and min(by_split.values()) >= split_target


def annealed_lr(lr_at_stop: float, step: int, steps: int) -> float:
    """The learning rate `step` batches into an anneal of `steps` batches: linear from `lr_at_stop` to 0."""
    if steps <= 0:
        raise ValueError(f"annealed_lr: steps must be positive, got {steps}")
    return lr_at_stop * max(0.0, 1.0 - step / steps)


def warn_probe_unanswered(epoch: int, criterion: str, acc: dict[str, float], section: str = "finetune") -> None:
    """Say that teaching ran out of epochs before the probe was answered. Why: the run then goes on with a vanilla
    model that does not know the facts it is asked, and until the fifty-first session only the results page's check
    ("not met") said so; a user's own data whose taught pairs (ft_Data) do not hold the evaluated facts, or whose
    words the model's tokenizer reads as <unk>, ran 150 epochs in silence."""
    log.warning("teaching ended at %s.epochs=%d without the probe reaching %s.target_mc_acc (%s): last probe MC "
                "accuracy %s; the taught model does not know the probe's facts, so forgetting cannot be read from it "
                "(raise %s.epochs, or check that the taught questions cover what is evaluated)", section, epoch,
                section, criterion, {k: round(v, 3) for k, v in acc.items()}, section)


class MemorisationCheck(Callback):
    def __init__(self, items: list[EvalItem], processor, target: float, every: int = 10, batch_size: int = 64,
                 anneal_epochs: int = 0, split_items: list[EvalItem] = (), split_target: float | None = None,
                 section: str = "finetune"):
        """`section`: the config section whose epochs and target the warnings name (the organism's base:
        model.base)."""
        self.section = section
        self.items = [it for it in items if it.task == "mc"]
        if not self.items:
            raise ValueError("finetune.probe_people selects no multiple-choice question")
        if anneal_epochs < 0:
            raise ValueError(f"finetune.anneal_epochs={anneal_epochs}: expected 0 (stop at once) or more")
        self.split_items = [it for it in split_items if it.task == "mc"]
        if split_target is not None and not self.split_items:
            raise ValueError("finetune.target_split_mc_acc: the splits hold no multiple-choice question")
        self.proc, self.target, self.every, self.batch_size = processor, float(target), int(every), batch_size
        self.anneal_epochs = int(anneal_epochs)
        self.split_target = None if split_target is None else float(split_target)
        self.history: list[dict] = []
        self._anneal: dict | None = None  # from the stop on: lrs at the stop, first step, length, last epoch
        self.stopped = False  # teaching stopped here (saved: a resumed teaching stays stopped)

    def state_dict(self) -> dict:
        """What a resumed teaching needs to go on as an uninterrupted one (unlearn/teaching_resume.py): the checks
        so far (metrics.json's finetune_probe), the anneal under way, and whether the probe stopped teaching."""
        return {"history": self.history, "anneal": self._anneal, "stopped": self.stopped}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = list(state_dict["history"])
        self._anneal = state_dict["anneal"]
        self.stopped = bool(state_dict["stopped"])

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.stopped:  # resumed from the checkpoint of the epoch it stopped at: no epoch more
            trainer.should_stop = True

    def _accuracy(self, model, items: list[EvalItem], key) -> dict[str, float]:
        was_training = model.training
        model.eval()
        records = []
        with torch.no_grad():
            for i in range(0, len(items), self.batch_size):
                # whole rows (score_mc's default), not eval.share_prompt: the probe decides when teaching stops,
                # so it is part of the vanilla recipe its cache key names
                records += score_mc(model, self.proc, items[i:i + self.batch_size])
        model.train(was_training)
        groups: dict[str, list[float]] = {}
        for r in records:
            groups.setdefault(key(r), []).append(r["score"])
        return {k: sum(v) / len(v) for k, v in groups.items()}

    def on_model(self, trainer: L.Trainer, pl_module: L.LightningModule, score):
        """`score(the model)`, through the strategy's wrapper where it is FSDP's: the root unit's weights (the
        embeddings, the head, the vision tower: every one outside the per-block units) are whole only inside the
        wrapper's forward, and until 2026-12-05 the probe, called on the model directly, read their flat shards
        under trainer=fsdp and fsdp_sim ("'weight' must be 2-D"). Every rank scores, as the probe always has."""
        from lightning.pytorch.strategies import FSDPStrategy

        strategy = trainer.strategy
        if isinstance(strategy, FSDPStrategy) and hasattr(pl_module, "apply_to_model"):
            return strategy._forward_redirection(strategy.model, pl_module, "apply_to_model", score)
        return score(pl_module.model)

    def accuracy(self, model) -> dict[str, float]:
        """The pooled probe's MC accuracy per form ("multimodal", "text")."""
        return self._accuracy(model, self.items, lambda r: r["modality"])

    def split_accuracy(self, model) -> dict[str, float]:
        """MC accuracy per split and form over the split items ("forget/text", ...)."""
        return self._accuracy(model, self.split_items, lambda r: f"{r['split']}/{r['modality']}")

    def criterion(self) -> str:
        each = "" if self.split_target is None else f", and {self.split_target:.2f} in each split's"
        return f"{self.target:.2f} in every form{each}"

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
                self.history.append({"epoch": epoch, "annealed": True,
                                     **self.on_model(trainer, pl_module, self.accuracy)})
                trainer.should_stop = self.stopped = True
            return
        if epoch % self.every and epoch != trainer.max_epochs:
            return
        acc = self.on_model(trainer, pl_module, self.accuracy)
        # agreed over ranks before the splits are scored: a rank that scored and logged them alone would make
        # more collectives (log_dict's sync) than the others
        done = trainer.strategy.reduce_boolean_decision(probe_answered(acc, self.target), all=True)
        if done and self.split_target is not None:
            split = self.on_model(trainer, pl_module, self.split_accuracy)
            acc.update(split)
            held = floor_held(split, self.split_target)
            if not held:
                below = {k: round(v, 3) for k, v in split.items() if v < self.split_target}
                log.info("epoch %d: the pooled probe is answered, not every split: %s under %.2f", epoch, below,
                         self.split_target)
            done = trainer.strategy.reduce_boolean_decision(held, all=True)
        self.history.append({"epoch": epoch, **acc})
        # every rank scored the whole probe on the same weights, so the mean over ranks is each rank's value;
        # sync_dist says so to Lightning, which otherwise warns under DDP about an unsynchronised epoch metric
        pl_module.log_dict({f"probe/{k.replace('/', '_')}_mc_acc": v for k, v in acc.items()}, sync_dist=True)
        log.info("epoch %d: probe MC accuracy %s", epoch, {k: round(v, 3) for k, v in acc.items()})
        if not done:  # agreed over ranks above
            if epoch >= trainer.max_epochs:
                warn_probe_unanswered(epoch, self.criterion(), acc, self.section)
            return
        if self.anneal_epochs == 0 or epoch >= trainer.max_epochs:
            log.info("probe accuracy reached %s: stopping at epoch %d", self.criterion(), epoch)
            trainer.should_stop = self.stopped = True
            return
        log.info("probe accuracy reached %s at epoch %d: annealing for %d epochs", self.criterion(), epoch,
                 self.anneal_epochs)
        self._anneal = {"lrs": [g["lr"] for g in trainer.optimizers[0].param_groups], "start": trainer.global_step,
                        "steps": self.anneal_epochs * trainer.num_training_batches,
                        "last_epoch": epoch + self.anneal_epochs}
