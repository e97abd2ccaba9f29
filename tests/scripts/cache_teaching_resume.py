"""The cache's own teaching (pipeline.ensure_vanilla with the run's directory, as an unlearning run with no cached
vanilla model teaches it) on N CPU processes: straight into one cache, and into another killed after its first
epoch then resumed from <run dir>/checkpoints/teaching/last.ckpt (+finetune.ckpt_path); rank 0 saves both
published models, the epochs the resume found done and whether the resumed run's teaching checkpoints are gone.
Used by tests/test_teaching_resume.py: the resumed teaching must publish the uninterrupted one's model."""

from pathlib import Path

from ddp_script import finish, is_rank_zero, setup  # first: puts the repository on sys.path
from killed_teaching import killed_at_epoch

import torch
from omegaconf import open_dict
from safetensors.torch import load_file

from unlearn import teaching_resume
from unlearn.config import compose_config
from unlearn.pipeline import ensure_vanilla


def main(argv=None):
    args, bench, _, _ = setup(global_batch=True, argv=argv)
    resumed_after = []  # the epochs a resume found done (rank 0's log line): a teaching ignoring the resume gives
    said = teaching_resume.say_where_it_resumes  # the same weights, taught from the start
    teaching_resume.say_where_it_resumes = lambda completed, *a: (resumed_after.append(completed), said(completed, *a))
    root = Path(args.out).parent / f"cache_resume_{args.devices}"

    def teach(name, resume=None, kill_at=None):
        cfg = compose_config(["debug=fast", "method=manu", f"finetune.batch_size={args.global_batch // args.devices}",
                              "trainer=" + ("ddp_sim" if args.devices > 1 else "cpu"), f"trainer.devices={args.devices}"],
                             root / name, root / f"cache_{name}")
        with open_dict(cfg):
            cfg.finetune.ckpt_path = str(resume) if resume else None
        with killed_at_epoch(kill_at):  # killed: None
            return load_file(Path(ensure_vanilla(cfg, bench, run_dir=root / name)) / "model.safetensors")

    try:
        straight = teach("straight")
        teach("killed", kill_at=1)
        last = root / "killed" / "checkpoints" / "teaching" / "last.ckpt"
        resumed = teach("killed", resume=last)
    finally:  # the next script of an in_one_launch.py launch says its own
        teaching_resume.say_where_it_resumes = said
    if is_rank_zero():
        torch.save({"straight": straight, "resumed": resumed, "left": last.parent.exists(),
                    "resumed_after": resumed_after}, args.out)


if __name__ == "__main__":
    main()
    finish()
