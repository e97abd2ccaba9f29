"""Teach a fresh tiny LLaVA (one epoch, SGD) on N CPU processes; rank 0 saves the weights and what was read.

Used by tests/test_ddp.py: one process with the global batch and two processes with half of it each must end at
the same weights under `finetune.token_mean=global` (the default), on a set of odd size whose portraits are drawn
on every access (two variants per person). `--token-mean process` (the official presets') is the control that
the comparison can fail. Lightning's `ddp` launcher re-runs this script for the other ranks. `--step-counts` also
runs teaching_steps.py's cases after the teaching, in the same launch (a launch of two processes costs about 12 s
before any work on 2 cores), saved under "step_counts".
"""

import copy

from pathlib import Path

from ddp_script import finish, is_rank_zero, setup  # first: puts the repository on sys.path

import torch

import unlearn.data.written as written
from unlearn.config import compose_config
from unlearn.methods import finetune
from unlearn.pipeline import RunContext


def main(argv=None):
    def extra(ap):
        ap.add_argument("--token-mean", nargs="+", default=["global"],
                        help="several: each taught in turn from the same fresh model, in one launch")
        ap.add_argument("--step-counts", action="store_true", help="then teaching_steps.py's cases")

    args, bench, model, proc = setup(extra, global_batch=True, argv=argv)
    fresh = copy.deepcopy(model)
    results = {mean: one_case(args, bench, copy.deepcopy(fresh), proc, mean) for mean in args.token_mean}
    if args.step_counts:
        from teaching_steps import counts

        results["step_counts"] = counts(args.devices)
    if is_rank_zero():
        torch.save(results, args.out)


def one_case(args, bench, model, proc, token_mean: str) -> dict:
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    whole, read = written.qa_sequences, {"draws": []}

    def odd(*a, **k):  # one sequence fewer where the set is even: on two processes a shard is padded
        ds = whole(*a, **k)
        if len(ds) % 2 == 0:
            ds.index = ds.index[:-1]
        read.update(size=len(ds), augmented=bool(ds.augment),
                    variants=max(len(b) for b in ds.banks if b is not None))
        draw = ds._variant

        def logged(i):  # every portrait this process draws (for its items, and replayed for the others')
            v = draw(i)
            if v is not None:
                read["draws"].append((int(i), v))
            return v

        ds._variant = logged
        return ds

    written.qa_sequences = odd
    out_dir = Path(args.out).parent / f"teach_{token_mean}_{args.devices}"
    cfg = compose_config(["debug=fast", "method=finetune", f"finetune.batch_size={args.global_batch // args.devices}",
                          "finetune.epochs=1", "finetune.target_mc_acc=null", "finetune.scheduler=null",
                          "finetune.optimizer._target_=torch.optim.SGD", "finetune.optimizer.lr=0.05",
                          "~finetune.optimizer.weight_decay", f"+finetune.token_mean={token_mean}",
                          "trainer=" + ("ddp_sim" if args.devices > 1 else "cpu"), f"trainer.devices={args.devices}"],
                         out_dir, args.cache)
    ctx = RunContext(cfg, bench, model, proc, out_dir)
    # as ensure_vanilla does: seed_everything, then the model's initialisation draws, then the shuffle draws from the
    # global state; Lightning's DDP reseeds every rank from that seed as fit starts (callbacks/random_state.py)
    import lightning as L

    L.seed_everything(0, verbose=False)
    torch.rand(7)
    try:
        finetune.teach(ctx, cfg.finetune)
    finally:
        written.qa_sequences = whole
    return {"weights": {n: p.detach().clone() for n, p in ctx.model.named_parameters()}, "start": start, **read}


if __name__ == "__main__":
    main()
    finish()
