"""One or two CPU processes (or the caller's, `train_one_step`) train a small bfloat16 model one AdamW step under Lightning (DDP, or FSDP sharding
each Linear): callbacks.lost_updates.LostUpdateCheck's record, written by rank 0 with the count made directly on
the whole model. Used by tests/test_lost_updates.py: the counts summed over FSDP's shards and DDP's replicas
must give the one-process fraction."""

import argparse
import sys
from pathlib import Path

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from callbacks.lost_updates import LostUpdateCheck  # noqa: E402
from unlearn.models.precision import steps_rounded_away  # noqa: E402

LR = 5e-5


class Net(L.LightningModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = torch.nn.Linear(16, 33), torch.nn.Linear(33, 1)  # 33: shards of unequal size

    def training_step(self, batch, _):
        return self.b(torch.tanh(self.a(batch[0]))).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=LR)


def train_one_step(devices: int = 1, fsdp: bool = False, precision: str = "bf16-true") -> tuple[list, float, bool]:
    """(the callback's record, the fraction counted directly on the whole model, whether this is rank 0)."""
    net = Net()
    whole = [p.detach().to(torch.bfloat16) for p in net.parameters()]
    expected = sum(steps_rounded_away(p, LR) for p in whole) / sum(p.numel() for p in whole)
    if fsdp:
        from unlearn.strategies import fsdp_strategy

        strategy = fsdp_strategy(["torch.nn.Linear"], activation_checkpointing=False)
    else:
        strategy = "ddp" if devices > 1 else "auto"
    record: list = []
    data = torch.utils.data.TensorDataset(torch.randn(8, 16))
    trainer = L.Trainer(accelerator="cpu", devices=devices, strategy=strategy, precision=precision,
                        max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[LostUpdateCheck(record)])
    trainer.fit(net, torch.utils.data.DataLoader(data, batch_size=2))
    return record, expected, trainer.is_global_zero


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=1)
    ap.add_argument("--fsdp", action="store_true")
    ap.add_argument("--out", required=True)
    args, _ = ap.parse_known_args()
    record, expected, rank0 = train_one_step(args.devices, args.fsdp)
    if rank0:
        torch.save({"record": record, "expected": expected}, args.out)


if __name__ == "__main__":
    main()
