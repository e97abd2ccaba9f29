"""MANU's official statistics pass + selection on N CPU processes; rank 0 saves statistics and masks.

Used by tests/test_manu_official.py, through manu_pass.py --also official (one launch with tests/test_ddp.py's
MANU cases), or alone: one process and two (gloo) must give the same statistics and masks.
"""

from pathlib import Path
from types import SimpleNamespace

from ddp_script import finish, is_rank_zero, setup, trainer_kwargs  # first: puts the repository on sys.path

import lightning as L
import torch

from callbacks.neuron_pruning import NeuronPruning
from callbacks.official_stats import OfficialActivationStatistics
from unlearn.config import compose_config
from unlearn.methods.manu import ActivationPass, official_plans, statistics_datasets


def main():
    args, bench, model, proc = setup()
    result = official_pass(args, bench, model, proc)
    if is_rank_zero():
        torch.save(result, args.out)


def official_pass(args, bench, model, proc) -> dict:
    model.eval()
    ctx = SimpleNamespace(benchmark=bench, processor=proc)
    kw = trainer_kwargs(args.devices)
    patterns = dict(compose_config([], Path(args.out).parent, args.cache).model.manu_official_modules)
    stats = OfficialActivationStatistics(patterns, pooled=True)
    pruning = NeuronPruning(stats, alpha=10.0, apply_last=3)
    datasets = statistics_datasets(ctx)
    plans = official_plans(datasets, 3, chunk_size=2, seed=0)  # several chunks, batches split across ranks
    L.Trainer(callbacks=[stats, pruning], **kw).validate(
        ActivationPass(model, datasets, 3, proc.tokenizer.pad_token_id, plans), verbose=False)
    return {"stats": stats.stats, "masks": pruning.masks, "chunks": stats.num_chunks}


if __name__ == "__main__":
    main()
    finish()
