"""One or two CPU processes (or the caller's, `train_one_step`) train a small bfloat16 model one AdamW step under
Lightning (DDP, or FSDP sharding each Linear): callbacks.lost_updates.LostUpdateCheck's records, written by rank 0
with the counts made directly on the whole model. Two cases per strategy, the strategies in turn, in one launch: every weight trained, and only the first
layer's bias (under FSDP rank 0 then holds no element of a trained weight: a rank that skipped the counts'
collective, or sent another shape, hung). Used by tests/test_lost_updates.py."""

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
    def __init__(self, only: str | None = None):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = torch.nn.Linear(16, 33), torch.nn.Linear(33, 1)  # 33: shards of unequal size
        for name, p in self.named_parameters():
            p.requires_grad_(only is None or name == only)

    def training_step(self, batch, _):
        return self.b(torch.tanh(self.a(batch[0]))).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=LR)


def train_one_step(devices: int = 1, fsdp: bool = False, precision: str = "bf16-true",
                   only: str | None = None) -> tuple[list, dict, bool]:
    """(the callback's record, {unchanged, trained} counted directly on the whole model in bfloat16, rank 0?)."""
    net = Net(only)
    whole = [p.detach().to(torch.bfloat16) for p in net.parameters() if p.requires_grad]
    expected = {"unchanged": sum(int(steps_rounded_away(p, LR)) for p in whole),
                "trained": sum(p.numel() for p in whole)}
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
    ap.add_argument("--strategy", nargs="+", choices=["ddp", "fsdp"], default=["ddp"],
                    help="several run in turn in one launch (a launch of two processes costs ~10 s before any work)")
    ap.add_argument("--out", required=True)
    args, _ = ap.parse_known_args()
    runs = {s: [train_one_step(args.devices, s == "fsdp", only=only) for only in (None, "a.bias")]
            for s in args.strategy}
    if all(run[2] for cases in runs.values() for run in cases):
        torch.save({s: [{"record": rec, "expected": exp} for rec, exp, _ in cases] for s, cases in runs.items()},
                   args.out)


if __name__ == "__main__":
    from ddp_script import finish  # run as a script, this folder is sys.path[0] (the tests import this file too)

    main()
    finish()
