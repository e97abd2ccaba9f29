"""Teach a toy module under the teaching probe and its split floor on N CPU processes, the probe's readings
scripted per rank; rank 0 saves what every rank saw.

Used by tests/test_ddp.py: the probe's two stop decisions (the pooled probe, then the split floor scored only
where it passes) must be the ranks' agreed ones, or a rank scores and logs the splits alone or stops while the
others train on, and DDP hangs. The readings are scripted so that the ranks disagree: rank r answers the
pooled probe from epoch 2 + r and holds the floor from epoch 3 + r. On two processes both must score the splits
first at epoch 3 and stop at epoch 4; one process (rank 0's readings) stops at epoch 3.
"""

from ddp_script import finish, trainer_kwargs  # first: puts the repository on sys.path

import argparse
from types import SimpleNamespace

import lightning as L
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, TensorDataset

from callbacks.memorisation import MemorisationCheck

FORMS = ("multimodal", "text")
SPLITS = ("forget/multimodal", "forget/text", "retain/multimodal", "retain/text")


class Toy(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        (x,) = batch
        return self.model(x).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


class ScriptedProbe(MemorisationCheck):
    """The probe with its readings scripted by epoch and rank (no model is scored)."""

    def __init__(self, rank: int):
        mc = SimpleNamespace(task="mc")
        super().__init__([mc], processor=None, target=0.97, every=1, split_items=[mc], split_target=0.95)
        self.rank, self.epoch, self.split_scored_at = rank, 0, []

    def on_train_epoch_end(self, trainer, pl_module):
        self.epoch = trainer.current_epoch + 1
        super().on_train_epoch_end(trainer, pl_module)

    def accuracy(self, model):
        answered = self.epoch >= 2 + self.rank
        return {f: 1.0 if answered else 0.5 for f in FORMS}

    def split_accuracy(self, model):
        self.split_scored_at.append(self.epoch)
        held = self.epoch >= 3 + self.rank
        return {k: 1.0 if held or k.startswith("retain") else 0.9 for k in SPLITS}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, required=True)
    ap.add_argument("--cache", required=True)  # unused: the shared test runner passes it
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    trainer = L.Trainer(**trainer_kwargs(args.devices), max_epochs=8, enable_checkpointing=False,
                        callbacks=[probe := ScriptedProbe(rank=0)])
    model = Toy()  # the rank is known once the launcher has started the processes
    model.on_fit_start = lambda: setattr(probe, "rank", trainer.global_rank)
    trainer.fit(model, DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=2))
    seen = {"rank": trainer.global_rank, "epochs_run": trainer.current_epoch, "split_scored_at": probe.split_scored_at,
            "history": probe.history, "logged": sorted(k for k in trainer.callback_metrics if k.startswith("probe/"))}
    every = [None] * trainer.world_size
    if dist.is_initialized():
        dist.all_gather_object(every, seen)
    else:
        every = [seen]
    if trainer.global_rank == 0:
        torch.save(every, args.out)


if __name__ == "__main__":
    main()
    finish()
