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
    import torch
    import torch.distributed as dist

    from unlearn.agreed import agreed

    flag = Path(args.cache) / "published"
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    before = agreed(f"published {flag}", flag.exists)
    if rank == 0:
        flag.parent.mkdir(parents=True, exist_ok=True)
        flag.touch()

    ddp_script.fit_one_step(int(args.devices))
    after = agreed(f"rank is zero {flag}", lambda: dist.get_rank() == 0)
    decisions = [None] * dist.get_world_size()
    dist.all_gather_object(decisions, {"before": before, "after": after, "started_by_rank0": rank > 0})
    if dist.get_rank() == 0:
        torch.save(decisions, args.out)


if __name__ == "__main__":
    main()
    ddp_script.finish()
