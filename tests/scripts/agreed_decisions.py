"""Rank 0's cache decisions are every rank's (unlearn/agreed.py). Rank 0 decides a file is missing, then the file
appears (another run sharing the cache publishes it) before rank 0 makes its first Trainer, which starts rank 1;
rank 1 looks later and would find it. After the fit (a process group exists) the ranks would decide apart
again. Every rank's decisions are gathered into --out."""

import ddp_script  # noqa: I001  (first: the repository on sys.path, W&B off)

import argparse
import os
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    for a in ("--devices", "--cache", "--out"):
        ap.add_argument(a, required=True)
    args = ap.parse_args()
    import lightning as L
    import torch
    import torch.distributed as dist
    from torch.utils.data import DataLoader, TensorDataset

    from unlearn.agreed import agreed

    flag = Path(args.cache) / "published"
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    before = agreed(f"published {flag}", flag.exists)
    if rank == 0:
        flag.parent.mkdir(parents=True, exist_ok=True)
        flag.touch()

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            return self.w(batch[0]).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = L.Trainer(accelerator="cpu", devices=int(args.devices), strategy="ddp", max_steps=1, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    trainer.fit(Tiny(), DataLoader(TensorDataset(torch.ones(4, 2)), batch_size=2))
    after = agreed(f"rank is zero {flag}", lambda: dist.get_rank() == 0)
    decisions = [None] * dist.get_world_size()
    dist.all_gather_object(decisions, {"before": before, "after": after, "started_by_rank0": rank > 0})
    if dist.get_rank() == 0:
        torch.save(decisions, args.out)


if __name__ == "__main__":
    main()
    ddp_script.finish()
