"""Evaluate a few items of each task on N CPU processes, with counts no process count divides.

Used by tests/test_ddp.py: Lightning's DistributedSampler pads each task's loader with repeats, and the
evaluator must keep each item once (by uid, in uid order) so that 1 and 2 processes report the same records.
Run through manu_pass.py --also eval_odd (one launch with the MANU cases), or alone.
"""

from ddp_script import finish, is_rank_zero, setup, trainer_kwargs  # first: puts the repository on sys.path

import lightning as L
import torch

from unlearn.eval.evaluator import EvaluationModule
from unlearn.eval.items import flatten

COUNTS = {"mc": 7, "gen": 5, "cloze": 3, "prob": 5}  # odd: on two processes every task's loader is padded


def main():
    args, bench, model, proc = setup()
    result = eval_odd(args, bench, model, proc)
    if is_rank_zero():
        torch.save(result, args.out)


def eval_odd(args, bench, model, proc) -> dict:
    model.eval()
    by_task = {}
    for split in ("forget", "retain"):
        for item in flatten(split, bench.eval[split].select(range(2)), proc.pixel_values):
            by_task.setdefault(item.task, []).append(item)
    items = [it for task, n in COUNTS.items() for it in by_task[task][:n]]
    assert len(items) == sum(COUNTS.values()), {t: len(v) for t, v in by_task.items()}
    module = EvaluationModule(model, proc, items, "after", batch_size=2, max_new_tokens=3)
    kwargs = trainer_kwargs(args.devices)
    kwargs["use_distributed_sampler"] = True
    L.Trainer(**kwargs).validate(module, verbose=False)
    read_here = len(module._records)  # this process's records before the gather, repeats included
    return {"metrics": module.metrics, "records": module.records, "read_on_rank0": read_here}


if __name__ == "__main__":
    main()
    finish()
