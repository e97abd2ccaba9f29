"""Run MMUnlearner (Fisher mask, then a few masked-unlearning steps) on N CPU processes; rank 0 saves the results.

Used by tests/test_ddp.py: one process with the global batch and two processes with half of it each must compute
the same mask and the same weights. Lightning's `ddp` launcher re-runs this script for the other ranks.
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import lightning as L  # noqa: E402
import torch  # noqa: E402

from unlearn.config import compose_config  # noqa: E402
from unlearn.data.benchmark import Benchmark  # noqa: E402
from unlearn.data.collate import IGNORE  # noqa: E402
from unlearn.data.mllmu_mini import MiniSpec, load_or_build  # noqa: E402
from unlearn.methods.mmunlearner import GROUPS, compute_masks, masked_update  # noqa: E402
from unlearn.models.tiny_llava import TinyLlavaSpec, build_tiny_llava  # noqa: E402
from unlearn.pipeline import RunContext  # noqa: E402
from unlearn.mmunlearner.saliency import group_parameters  # noqa: E402

FISHER_BATCH = 3  # the Fisher's batches are fixed before sharding: the same for any number of processes


class Record(L.Callback):
    """Weights right after the first forget step, and each rank's forget answer tokens in the first batch."""

    def __init__(self, names):
        self.names, self.after_forget, self.tokens = names, None, None

    def on_train_start(self, trainer, pl_module):
        def hook(optimizer, args, kwargs):
            if self.after_forget is None:
                self.after_forget = {n: p.detach().clone() for p, n in self.names.items()}
        trainer.optimizers[0].register_step_post_hook(hook)  # the forget optimiser ("two" optimisers)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0:
            mine = (batch["forget"]["labels"][:, 1:] != IGNORE).sum().reshape(1)
            self.tokens = pl_module.all_gather(mine).reshape(-1).tolist()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, required=True)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--global-batch", type=int, default=6)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--optimizer", default="torch.optim.SGD")
    ap.add_argument("--lr", type=float, default=0.05)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.global_batch % args.devices:
        raise SystemExit(f"--global-batch {args.global_batch} is not a multiple of --devices {args.devices}")
    splits = load_or_build(MiniSpec(num_people=12, num_untouched=4, seed=0, train_variants=2), args.cache)
    bench = Benchmark(splits, "forget_15")
    model, proc = build_tiny_llava(TinyLlavaSpec())
    out_dir = Path(args.out).parent / f"run_{args.devices}"
    overrides = ["debug=fast", "method=mmunlearner", "trainer=" + ("ddp_sim" if args.devices > 1 else "cpu"),
                 f"trainer.devices={args.devices}", f"+trainer.limit_train_batches={args.steps}",
                 f"mmunlearner.batch_size={args.global_batch // args.devices}", "mmunlearner.epochs=1",
                 "mmunlearner.retain_steps=null"]  # from the data sizes: must not depend on the world size
    for opt in ("forget_optimizer", "retain_optimizer"):
        overrides += [f"mmunlearner.{opt}._target_={args.optimizer}", f"mmunlearner.{opt}.lr={args.lr}"]
    cfg = compose_config(overrides, out_dir, args.cache)
    ctx = RunContext(cfg, bench, model, proc, out_dir)
    groups = group_parameters(model, dict(cfg.model.param_groups))
    masks, names, _ = compute_masks(ctx, groups, GROUPS["both"], cfg.mmunlearner.gamma, FISHER_BATCH)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    record = Record(names)
    module = masked_update(ctx, masks, cfg.mmunlearner, callbacks=[record])
    if not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0:
        torch.save({"masks": {names[p]: m for p, m in masks.items()}, "before": before,
                    "after_forget": record.after_forget,
                    "after": {n: p.detach().clone() for n, p in model.named_parameters()},
                    "retain_steps": module.retain_steps_taken, "steps": module.trainer.fit_loop.epoch_loop.batch_progress
                    .current.completed, "forget_tokens": record.tokens}, args.out)


if __name__ == "__main__":
    main()
