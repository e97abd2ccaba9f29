"""Run MMUnlearner (Fisher mask, then a few masked-unlearning steps) on N CPU processes; rank 0 saves the results.

Used by tests/test_ddp.py: one process with the global batch and two processes with half of it each must compute
the same mask and the same weights. Lightning's `ddp` launcher re-runs this script for the other ranks. The saved
file is {retain_steps value: result}, and with --official-fisher also {"official_fisher": its masks}, made first
from a copy of the fresh model (one launch for both: a launch of two processes costs about 12 s before any work).
"""

import copy
from pathlib import Path

from ddp_script import finish, is_rank_zero, logged_losses, setup  # first: puts the repository on sys.path

import lightning as L
import torch
from torch.utils.data import Subset

from unlearn.config import compose_config
from unlearn.data.collate import IGNORE
from unlearn.methods import mmunlearner
from unlearn.methods.mmunlearner import GROUPS, compute_masks, masked_update
from unlearn.mmunlearner.saliency import group_parameters
from unlearn.pipeline import RunContext

FISHER_BATCH = 3  # the Fisher's batches are fixed before sharding: the same for any number of processes


class Record(L.Callback):
    """Weights right after the first forget step, and each rank's forget answer tokens in each batch."""

    def __init__(self, names):
        self.names, self.after_forget, self.tokens = names, None, []

    def on_train_start(self, trainer, pl_module):
        def hook(optimizer, args, kwargs):
            if self.after_forget is None:
                self.after_forget = {n: p.detach().clone() for p, n in self.names.items()}
        trainer.optimizers[0].register_step_post_hook(hook)  # the forget optimiser ("two" optimisers)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        mine = (batch["forget"]["labels"][:, 1:] != IGNORE).sum().reshape(1)
        self.tokens.append(pl_module.all_gather(mine).reshape(-1).tolist())


def main(argv=None):
    def extra(ap):
        ap.add_argument("--steps", type=int, default=2)
        ap.add_argument("--optimizer", default="torch.optim.SGD")
        ap.add_argument("--lr", type=float, default=0.05)
        ap.add_argument("--retain-steps", nargs="*", default=["null"],
                        help="mmunlearner.retain_steps: null, an int or official; several run in turn, each from the "
                             "same weights and masks, in one launch; none: no update")
        ap.add_argument("--official-fisher", action="store_true",
                        help="also the masks from the authors' Fisher (mixed preserve batches, shuffled, float16), "
                             "on a copy of the fresh model, before the rest")
        ap.add_argument("--odd", action="store_true",
                        help="the update's whole epoch (not --steps) on forget and retain sets of odd size: shards "
                             "are padded")

    args, bench, model, proc = setup(extra, global_batch=True, argv=argv)
    results = {}
    if args.official_fisher:  # the model as set up, and the configuration of a run without --odd
        fresh = copy.deepcopy(model)
        cfg, ctx = configured(args, bench, fresh, proc, "null", odd=False, name="official_fisher")
        groups = group_parameters(fresh, dict(cfg.model.param_groups))
        masks, names, _ = compute_masks(ctx, groups, GROUPS["both"], cfg.mmunlearner.gamma, FISHER_BATCH,
                                        shuffle_seed=0, preserve_batches="mixed", fisher_dtype="float16")
        results["official_fisher"] = {"masks": {names[p]: m for p, m in masks.items()}}
        del fresh, ctx
    if args.retain_steps:
        results.update(update(args, bench, model, proc))
    if is_rank_zero():
        torch.save(results, args.out)


def update(args, bench, model, proc) -> dict:
    """The Fisher mask and, from the same weights and mask, the update under each --retain-steps value."""
    cfg, ctx = configured(args, bench, model, proc, args.retain_steps[0])
    groups = group_parameters(model, dict(cfg.model.param_groups))
    masks, names, _ = compute_masks(ctx, groups, GROUPS["both"], cfg.mmunlearner.gamma, FISHER_BATCH)
    sizes, made = {}, []
    whole = mmunlearner.qa_data
    if args.odd:  # after the Fisher: the update's multimodal forget and retain sets lose one sequence each
        def one_fewer(rows, proc, form, *a, **k):
            data = whole(rows, proc, form, *a, **k)
            if form == "multimodal":
                data = Subset(data, range(len(data) - 1))
            made.append(len(data))  # forget, then retain's forms
            sizes.update(forget=made[0], retain=sum(made[1:]))
            return data

        mmunlearner.qa_data = one_fewer
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    results = {}
    try:
        for value in args.retain_steps:
            with torch.no_grad():  # every case from the same weights (and the masks of the one Fisher pass)
                for n, p in model.named_parameters():
                    p.copy_(before[n])
            cfg, ctx = configured(args, bench, model, proc, value)
            made.clear()
            record, losses = Record(names), logged_losses()
            module = masked_update(ctx, masks, cfg.mmunlearner, callbacks=[record, losses])
            results[value] = {
                "masks": {names[p]: m for p, m in masks.items()}, "before": before,
                "after_forget": record.after_forget,
                "after": {n: p.detach().clone() for n, p in model.named_parameters()},
                "retain_steps": module.retain_steps_taken,
                "steps": module.trainer.fit_loop.epoch_loop.batch_progress.current.completed,
                "forget_tokens": record.tokens, "sizes": dict(sizes), "losses": losses.steps}
    finally:  # the next script of an in_one_launch.py launch reads the whole sets
        mmunlearner.qa_data = whole
    return results


def configured(args, bench, model, proc, retain_steps: str, odd: bool | None = None, name: str | None = None):
    out_dir = Path(args.out).parent / f"run_{args.devices}_{name or retain_steps}"
    limit = [] if (args.odd if odd is None else odd) else [f"+trainer.limit_train_batches={args.steps}"]
    overrides = ["debug=fast", "method=mmunlearner", "trainer=" + ("ddp_sim" if args.devices > 1 else "cpu"),
                 f"trainer.devices={args.devices}", *limit,
                 f"mmunlearner.batch_size={args.global_batch // args.devices}", "mmunlearner.epochs=1",
                 f"mmunlearner.retain_steps={retain_steps}"]  # from the global sizes: not the world size
    for opt in ("forget_optimizer", "retain_optimizer"):
        overrides += [f"mmunlearner.{opt}._target_={args.optimizer}", f"mmunlearner.{opt}.lr={args.lr}"]
    cfg = compose_config(overrides, out_dir, args.cache)
    return cfg, RunContext(cfg, bench, model, proc, out_dir)

if __name__ == "__main__":
    main()
    finish()
