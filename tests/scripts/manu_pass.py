"""Run MANU's statistics pass + pruning and the evaluation on N CPU processes; rank 0 saves the results.

Used by tests/test_ddp.py to check that one process and two (gloo) give the same statistics, mask and
metrics. Lightning's `ddp` launcher re-runs this script for the other ranks. `--also few_rows official eval_odd`
runs, in the same launch and each on a copy of the fresh model, manu_few_rows.py's passes, manu_official_pass.py's
and eval_odd.py's evaluation (a launch of two processes costs about 12 s before any work on 2 cores): the saved
file is then {"pass": this script's result, "few_rows": ..., "official": ..., "eval_odd": ...}.
"""

import copy
from pathlib import Path
from types import SimpleNamespace

from ddp_script import finish, is_rank_zero, setup, trainer_kwargs  # first: puts the repository on sys.path

import lightning as L
import torch

from callbacks.activation_stats import ActivationStatistics
from callbacks.neuron_pruning import NeuronPruning
from unlearn.config import compose_config
from unlearn.eval.evaluator import EvaluationModule
from unlearn.eval.items import flatten
from unlearn.methods.manu import ActivationPass, statistics_datasets


def main(argv=None):
    args, bench, model, proc = setup(lambda ap: ap.add_argument("--also", nargs="*", default=[],
                                                                choices=["few_rows", "official", "eval_odd"]),
                                     argv=argv)
    fresh = copy.deepcopy(model)
    result = manu_pass(args, bench, model, proc)
    if args.also:
        from eval_odd import eval_odd
        from manu_few_rows import few_rows
        from manu_official_pass import official_pass

        also = {"few_rows": few_rows, "official": official_pass, "eval_odd": eval_odd}
        result = {"pass": result, **{k: also[k](args, bench, copy.deepcopy(fresh), proc) for k in args.also}}
    if is_rank_zero():
        torch.save(result, args.out)


def manu_pass(args, bench, model, proc) -> dict:
    model.eval()
    ctx = SimpleNamespace(benchmark=bench, processor=proc)
    trainer_kw = trainer_kwargs(args.devices)
    patterns = dict(compose_config([], Path(args.out).parent, args.cache).model.mlp_modules)
    stats = ActivationStatistics(patterns, tau=0.1)
    pruning = NeuronPruning(stats, alpha=5.0)
    # batch size 3 so the shards and the batch boundaries differ between 1 and 2 processes
    L.Trainer(callbacks=[stats, pruning], **trainer_kw).validate(
        ActivationPass(model, statistics_datasets(ctx), 3, proc.tokenizer.pad_token_id), verbose=False)
    from unlearn.methods.mmunlearner import FisherPass, fisher_datasets

    fisher_params = [p for n, p in model.named_parameters() if n.endswith(("fc2.weight", "down_proj.weight"))]
    fisher = FisherPass(model, {"forget": fisher_datasets(ctx)["forget"]}, {"forget": fisher_params}, 3,
                        proc.tokenizer.pad_token_id)
    L.Trainer(inference_mode=False, **trainer_kw).validate(fisher, verbose=False)
    items = []
    for split in ("forget", "retain"):
        items += flatten(split, bench.eval[split].select(range(2)), proc.pixel_values)
    evaluation = EvaluationModule(model, proc, items, "after", batch_size=5, max_new_tokens=3)
    trainer_kw["use_distributed_sampler"] = True
    L.Trainer(**trainer_kw).validate(evaluation, verbose=False)
    return {"moments": {k: {n: m.to_dict() for n, m in v.items()} for k, v in stats.moments.items()},
            "masks": pruning.masks, "metrics": evaluation.metrics,
            "records": evaluation.records,
            "weights": {n: p.detach().clone() for n, p in model.named_parameters()},
            "fisher": [fisher.fisher["forget"][p] for p in fisher_params],
            "fisher_batches": fisher.batches["forget"]}


if __name__ == "__main__":
    main()
    finish()
