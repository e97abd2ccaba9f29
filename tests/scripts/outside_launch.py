"""Run under `torchrun --nproc-per-node 2`, or as srun's two tasks: both ranks start at once, with no rank 0 to
inherit a decision from. Each rank decides a rank-dependent question twice: before the process group exists (each its own answer, as
every decision was before the thirty-eighth session) and after `join_process_group` made it (rank 0's answer).
The group is made as the config's Trainers would make it (here its strategy's timeout, 123 s), and a Lightning
Trainer then fits on the group it finds. Every rank's record is gathered into --out."""

import ddp_script  # noqa: I001  (first: the repository on sys.path, W&B off)

import argparse
import os
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    import torch
    import torch.distributed as dist

    from unlearn.agreed import agreed
    from omegaconf import open_dict

    from unlearn.config import compose_config
    from unlearn.pipeline import join_process_group

    torch.set_num_threads(1)
    rank = int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))  # torchrun's, or srun's
    cfg = compose_config(["debug=fast", "method=ga", "trainer=ddp_sim"], Path(args.cache) / "run", args.cache)
    with open_dict(cfg):  # ddp_sim's strategy, with a timeout of its own
        cfg.trainer.strategy = {"_target_": "lightning.pytorch.strategies.DDPStrategy", "find_unused_parameters": True,
                                "timeout": {"_target_": "datetime.timedelta", "seconds": 123}}
    alone = agreed("rank is zero, before the group", lambda: rank == 0)
    joined = join_process_group(cfg)
    group = dist.group.WORLD if dist.is_initialized() else None
    timeout = group._get_backend(torch.device("cpu")).options._timeout.total_seconds() if group else None
    agreed_value = agreed("rank is zero, after the group", lambda: rank == 0)

    trainer = ddp_script.fit_one_step(2)
    records = [None] * dist.get_world_size()
    dist.all_gather_object(records, {"rank": rank, "alone": alone, "joined": joined, "agreed": agreed_value,
                                     "backend": dist.get_backend(), "timeout_s": timeout, "same_group": dist.group.WORLD is group,
                                     "trainer_rank": trainer.global_rank, "trainer_world": trainer.world_size,
                                     "steps": trainer.global_step})
    if rank == 0:
        torch.save(records, args.out)


if __name__ == "__main__":
    main()
    ddp_script.finish()
