"""Lightning's estimated_stepping_batches for the teaching's loader (finetune.shuffled_loader) on N CPU processes,
for a few (sequences, batch size, epochs, accumulate_grad_batches, max_steps) cases; rank 0 saves each case's
count beside unlearn.teaching_steps.optimizer_steps'. Used by tests/test_ddp.py, through teaching_update.py
--step-counts (one launch for both), or alone."""

from ddp_script import finish, is_rank_zero, setup, trainer_kwargs  # first: puts the repository on sys.path

import dataclasses

import lightning as L
import torch

from unlearn.methods.finetune import shuffled_loader
from unlearn.teaching_steps import optimizer_steps

CASES = [(37, 6, 2, 1, -1), (37, 6, 3, 4, -1), (9, 4, 2, 1, 3), (1, 4, 1, 1, -1)]


@dataclasses.dataclass
class Item:  # what UnlabelledRepeats reads of an example: its labels
    labels: list


class Counted(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.steps = None

    def training_step(self, batch, batch_idx):
        return self.w.sum() * 0.0

    def configure_optimizers(self):
        self.steps = self.trainer.estimated_stepping_batches
        return torch.optim.SGD(self.parameters(), lr=0.0)


def main():
    args, *_ = setup()
    out = counts(args.devices)
    if is_rank_zero():
        torch.save(out, args.out)


def counts(devices: int) -> list:
    """(Lightning's count, ours) for each case, in CASES' order."""
    out = []
    for sequences, batch, epochs, accumulate, max_steps in CASES:
        module = Counted()
        L.Trainer(max_epochs=epochs, max_steps=max_steps, accumulate_grad_batches=accumulate,
                  enable_checkpointing=False, **trainer_kwargs(devices)).fit(
            module, shuffled_loader([Item([i]) for i in range(sequences)], batch,
                                    lambda b: torch.tensor([x.labels[0] for x in b])))
        out.append((module.steps, optimizer_steps(sequences, batch, epochs, devices, accumulate, max_steps)))
    return out


if __name__ == "__main__":
    main()
    finish()
