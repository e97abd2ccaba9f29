"""MANU's project statistics pass (manu.selection=project) with fewer forget (and retain) sequences than processes;
rank 0 saves the moments and the mask. Used by tests/test_ddp.py, through manu_pass.py --also few_rows (one launch
for both), or alone."""

from pathlib import Path
from types import SimpleNamespace

from ddp_script import finish, is_rank_zero, setup, trainer_kwargs  # first: puts the repository on sys.path

import lightning as L
import torch
from torch.utils.data import Subset

from callbacks.activation_stats import ActivationStatistics
from callbacks.neuron_pruning import NeuronPruning
from unlearn.config import compose_config
from unlearn.methods.manu import ActivationPass, statistics_datasets


def main():
    # --rows forget,retain: one pass with the forget sets cut to one row, one with the retain sets; both: one pass
    # with all four cut
    args, bench, model, proc = setup(lambda ap: ap.add_argument("--rows", default="forget,retain"))
    results = few_rows(args, bench, model, proc, args.rows)
    if is_rank_zero():
        torch.save(results, args.out)


def few_rows(args, bench, model, proc, rows_cut: str = "forget,retain") -> dict:
    """{rows: moments and masks} of one pass per comma-separated `rows_cut` entry, in turn on `model` (each pass
    prunes it)."""
    model.eval()
    ctx = SimpleNamespace(benchmark=bench, processor=proc)
    patterns = dict(compose_config([], Path(args.out).parent, args.cache).model.mlp_modules)
    whole = statistics_datasets(ctx)
    results = {}
    for rows in rows_cut.split(","):
        cut = ("forget", "retain") if rows == "both" else (rows,)
        datasets = {k: Subset(ds, [0]) if k.split("/")[0] in cut else ds for k, ds in whole.items()}
        stats = ActivationStatistics(patterns, tau=0.1)
        pruning = NeuronPruning(stats, alpha=5.0)
        L.Trainer(callbacks=[stats, pruning], **trainer_kwargs(args.devices)).validate(
            ActivationPass(model, datasets, 3, proc.tokenizer.pad_token_id), verbose=False)
        results[rows] = {"moments": {k: {n: m.to_dict() for n, m in v.items()} for k, v in stats.moments.items()},
                         "masks": pruning.masks}
    return results


if __name__ == "__main__":
    main()
    finish()
