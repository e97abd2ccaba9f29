"""Run a gradient baseline (one epoch, SGD) on N CPU processes; rank 0 saves the weights.

Used by tests/test_ddp.py: one process with the global batch and two processes with half of it each must end
at the same weights, under each step schedule (method.schedule). Lightning's `ddp` launcher re-runs this
script for the other ranks. Each --case is
`method/schedule[/odd][/evaluate_first][/fsdp][/npo_log_ratio=X][/npo_empty_rows=Y]`, and several run in turn
(DDP's and FSDP's cases in one process group), each from the same fresh model with its own settings, in one launch (a launch of two
processes costs about 12 s before any work on 2 cores): the saved file is then {case: result}; one case saves
its result alone.
"""

import copy
import re

from pathlib import Path

from ddp_script import finish, is_rank_zero, logged_losses, setup  # first: puts the repository on sys.path

import torch
from torch.utils.data import Subset

from unlearn.config import compose_config
from unlearn.methods import gradient
from unlearn.models.tiny_llava import TinyLlavaSpec, build_tiny_llava
from unlearn.pipeline import RunContext


def main(argv=None):
    def extra(ap):
        ap.add_argument("--case", nargs="+", default=["grad_diff/sequential"],
                        help="method/schedule, then any of: odd (one sequence fewer of each set: shards are "
                             "padded), evaluate_first (score the forget split before unlearning, as a run's "
                             "before-evaluation does), fsdp (trainer=fsdp_sim instead of ddp_sim), "
                             "npo_log_ratio=X, npo_empty_rows=Y")

    args, bench, model, proc = setup(extra, global_batch=True, argv=argv)
    cases = {case: parse_case(case) for case in args.case}  # a misspelt case stops the launch before any runs
    fresh = copy.deepcopy(model)
    results = {case: one_case(args, bench, copy.deepcopy(fresh), proc, case, c) for case, c in cases.items()}
    if is_rank_zero():
        torch.save(next(iter(results.values())) if len(results) == 1 else results, args.out)


def parse_case(case: str) -> dict:
    """`method/schedule[/flag...][/key=value...]` as settings: the NPO keys become method overrides."""
    method, schedule, *rest = case.split("/")
    settings = {"method": method, "schedule": schedule, "odd": False, "evaluate_first": False, "fsdp": False,
                "overrides": []}
    for part in rest:
        key, _, value = part.partition("=")
        if part in ("odd", "evaluate_first", "fsdp"):
            settings[part] = True
        elif key in ("npo_log_ratio", "npo_empty_rows") and value:
            settings["overrides"].append(f"method.{key}={value}")
        else:
            raise SystemExit(f"--case {case}: {part!r} is not odd, evaluate_first, fsdp, npo_log_ratio=X or "
                             "npo_empty_rows=Y")
    return settings


def one_case(args, bench, model, proc, case: str, c: dict) -> dict:
    # forget_15: 38 forget and 190 retain sequences, both even, so no rank pads its shard; odd: 37 and 189, so on
    # two processes each set's last rank reads one padding repeat. The sizes read are recorded either way
    sizes, whole = {}, gradient._unlearning_data

    def sized(*a, **k):
        forget, retain = whole(*a, **k)
        if c["odd"]:
            forget, retain = Subset(forget, range(len(forget) - 1)), Subset(retain, range(len(retain) - 1))
        sizes.update(forget=len(forget), retain=len(retain))
        return forget, retain

    name = re.sub(r"[^\w.-]", "_", case)
    out_dir = Path(args.out).parent / f"run_{name}_{args.devices}"
    cfg = compose_config(["debug=fast", f"method={c['method']}", f"method.schedule={c['schedule']}",
                          "trainer=" + ("fsdp_sim" if c["fsdp"] else "ddp_sim" if args.devices > 1 else "cpu"),
                          f"trainer.devices={args.devices}", "eval.max_people=2", "eval.tasks=[mc,gen]",
                          f"method.batch_size={args.global_batch // args.devices}", "method.epochs=1",
                          "method.optimizer._target_=torch.optim.SGD", "method.optimizer.lr=0.05",
                          "~method.optimizer.weight_decay", *c["overrides"]],
                         out_dir, args.cache)
    ctx = RunContext(cfg, bench, model, proc, out_dir)
    losses, make_trainer = logged_losses(), ctx.trainer
    strategies = []  # the strategy of every Trainer the case made, by class name

    def trainer(**kw):
        made = make_trainer(**{**kw, "callbacks": [*kw.get("callbacks", []), losses]})
        strategies.append(type(made.strategy).__name__)
        return made

    ctx.trainer = trainer
    if c["evaluate_first"]:
        from unlearn.pipeline import evaluate

        evaluate(ctx, "before", ["forget"])
    gradient._unlearning_data = sized
    try:
        gradient.run(ctx)
    finally:  # the next case reads the whole sets again, or cuts them itself
        gradient._unlearning_data = whole
    m = cfg.method  # the settings the case ran under, as the tests check them
    return {"sizes": sizes, "losses": losses.steps,
            "settings": {k: m.get(k) for k in ("loss", "schedule", "npo_log_ratio", "npo_empty_rows")},
            "strategies": strategies,
            "weights": {n: p.detach().clone() for n, p in ctx.model.named_parameters()},
            "wrappers": [n for n, m in ctx.model.named_modules() if "Wrapper" in type(m).__name__
                         or "FullySharded" in type(m).__name__],
            "start": {n: p.detach().clone() for n, p in build_tiny_llava(TinyLlavaSpec())[0].named_parameters()}}

if __name__ == "__main__":
    main()
    finish()
