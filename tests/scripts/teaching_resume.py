"""Teach a fresh tiny LLaVA for 3 epochs on N CPU processes, straight and killed after its first epoch then resumed
from its last.ckpt (+finetune.ckpt_path); rank 0 saves both weights. Used by tests/test_teaching_resume.py: a
resumed teaching on the same number of processes must be the uninterrupted one (each rank's own random state and
the portraits' draws come back from the checkpoint: callbacks/resumable_draws.py)."""

import copy
from pathlib import Path

from ddp_script import finish, is_rank_zero, setup  # first: puts the repository on sys.path
from killed_teaching import killed_at_epoch

import lightning as L
import torch
from omegaconf import open_dict

from unlearn.config import compose_config
from unlearn.methods import finetune
from unlearn.pipeline import RunContext


def main(argv=None):
    args, bench, model, proc = setup(global_batch=True, argv=argv)
    root = Path(args.out).parent / f"resume_{args.devices}"

    def teach(name, resume=None, kill_at=None):
        cfg = compose_config(["debug=fast", "method=finetune", f"finetune.batch_size={args.global_batch // args.devices}",
                              "finetune.epochs=3", "trainer=" + ("ddp_sim" if args.devices > 1 else "cpu"),
                              f"trainer.devices={args.devices}"], root / name, args.cache)
        with open_dict(cfg):
            cfg.finetune.ckpt_path = str(resume) if resume else None
        ctx = RunContext(cfg, bench, copy.deepcopy(model), proc, root / name)
        L.seed_everything(0, verbose=False)
        with killed_at_epoch(kill_at):
            finetune.teach(ctx, cfg.finetune, checkpoints=root / name / "checkpoints", resume=resume)
        return {n: p.detach().clone() for n, p in ctx.model.named_parameters()}

    straight = teach("straight")
    teach("killed", kill_at=1)
    resumed = teach("killed", resume=root / "killed" / "checkpoints" / "last.ckpt")
    if is_rank_zero():
        torch.save({"straight": straight, "resumed": resumed, "start": dict(model.named_parameters())}, args.out)


if __name__ == "__main__":
    main()
    finish()
