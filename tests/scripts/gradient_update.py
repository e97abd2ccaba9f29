"""Run a gradient baseline (one epoch, SGD) on N CPU processes; rank 0 saves the weights.

Used by tests/test_ddp.py: one process with the global batch and two processes with half of it each must end
at the same weights, under each step schedule (method.schedule). Lightning's `ddp` launcher re-runs this
script for the other ranks. Several --method and --schedule values run each pair in turn, each from the same
fresh model, in one launch (a launch of two processes costs about 12 s before any work on 2 cores): the saved
file is then {"method/schedule": result}; one pair saves its result alone.
"""

import copy
import itertools

from pathlib import Path

from ddp_script import finish, is_rank_zero, logged_losses, setup  # first: puts the repository on sys.path

import torch
from torch.utils.data import Subset

from unlearn.config import compose_config
from unlearn.methods import gradient
from unlearn.models.tiny_llava import TinyLlavaSpec, build_tiny_llava
from unlearn.pipeline import RunContext


def main():
    def extra(ap):
        ap.add_argument("--method", nargs="+", default=["grad_diff"])
        ap.add_argument("--schedule", nargs="+", default=["sequential"])
        ap.add_argument("--npo-log-ratio", default=None)
        ap.add_argument("--npo-empty-rows", default=None)
        ap.add_argument("--odd", action="store_true", help="one sequence fewer of each set: shards are padded")
        ap.add_argument("--fsdp", action="store_true", help="trainer=fsdp_sim instead of ddp_sim")
        ap.add_argument("--evaluate-first", action="store_true",
                        help="score the forget split before unlearning, as a run's before-evaluation does")

    # forget_15: 38 forget and 190 retain sequences, both even, so no rank pads its shard; --odd: 37 and 189, so
    # on two processes each set's last rank reads one padding repeat
    args, bench, model, proc = setup(extra, global_batch=True)
    sizes = {}
    if args.odd:
        whole = gradient._unlearning_data

        def one_fewer(*a, **k):
            forget, retain = whole(*a, **k)
            sizes.update(forget=len(forget) - 1, retain=len(retain) - 1)
            return Subset(forget, range(len(forget) - 1)), Subset(retain, range(len(retain) - 1))

        gradient._unlearning_data = one_fewer
    fresh = copy.deepcopy(model)
    results = {f"{m}/{sch}": one_case(args, bench, copy.deepcopy(fresh), proc, m, sch, sizes)
               for m, sch in itertools.product(args.method, args.schedule)}
    if is_rank_zero():
        torch.save(next(iter(results.values())) if len(results) == 1 else results, args.out)


def one_case(args, bench, model, proc, method: str, schedule: str, sizes: dict) -> dict:
    out_dir = Path(args.out).parent / f"run_{method}_{schedule}_{args.devices}{'_fsdp' if args.fsdp else ''}"
    cfg = compose_config(["debug=fast", f"method={method}", f"method.schedule={schedule}",
                          "trainer=" + ("fsdp_sim" if args.fsdp else "ddp_sim" if args.devices > 1 else "cpu"),
                          f"trainer.devices={args.devices}", "eval.max_people=2", "eval.tasks=[mc,gen]",
                          f"method.batch_size={args.global_batch // args.devices}", "method.epochs=1",
                          "method.optimizer._target_=torch.optim.SGD", "method.optimizer.lr=0.05",
                          "~method.optimizer.weight_decay",
                          *([f"method.npo_log_ratio={args.npo_log_ratio}"] if args.npo_log_ratio else []),
                          *([f"method.npo_empty_rows={args.npo_empty_rows}"] if args.npo_empty_rows else [])],
                         out_dir, args.cache)
    ctx = RunContext(cfg, bench, model, proc, out_dir)
    losses, make_trainer = logged_losses(), ctx.trainer
    ctx.trainer = lambda **kw: make_trainer(**{**kw, "callbacks": [*kw.get("callbacks", []), losses]})
    if args.evaluate_first:
        from unlearn.pipeline import evaluate

        evaluate(ctx, "before", ["forget"])
    gradient.run(ctx)
    return {"sizes": dict(sizes), "losses": losses.steps,
            "weights": {n: p.detach().clone() for n, p in ctx.model.named_parameters()},
            "wrappers": [n for n, m in ctx.model.named_modules() if "Wrapper" in type(m).__name__
                         or "FullySharded" in type(m).__name__],
            "start": {n: p.detach().clone() for n, p in build_tiny_llava(TinyLlavaSpec())[0].named_parameters()}}

if __name__ == "__main__":
    main()
    finish()
