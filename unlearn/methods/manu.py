"""MANU (modality-aware neuron unlearning): one no-grad pass gathers statistics, then neurons are pruned.

The pass runs as a Lightning validation over four dataloaders (forget / retain x multimodal / text-only);
`ActivationStatistics` streams per-neuron moments and `NeuronPruning` scores, selects and zeroes neurons.
"""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader

from callbacks.activation_stats import ActivationStatistics
from callbacks.neuron_pruning import NeuronPruning
from unlearn.data.collate import collate
from unlearn.data.sequences import QASequences
from unlearn.eval.scoring import model_inputs
from unlearn.strategies import refuse_fsdp


class ActivationPass(L.LightningModule):
    """A forward-only pass; each rank reads a disjoint shard (no repeated samples, so sums are exact)."""

    def __init__(self, model: torch.nn.Module, datasets: dict, batch_size: int, pad_id: int):
        super().__init__()
        self.model, self.datasets = model, datasets
        self.loader_keys = list(datasets)
        self.batch_size, self.pad_id = batch_size, pad_id

    def val_dataloader(self):
        loaders = []
        for ds in self.datasets.values():
            sampler = None
            if self.trainer.world_size > 1:
                sampler = UnrepeatedDistributedSampler(ds, num_replicas=self.trainer.world_size,
                                                       rank=self.trainer.global_rank, shuffle=False)
            loaders.append(DataLoader(ds, batch_size=self.batch_size, sampler=sampler,
                                      collate_fn=lambda b: collate(b, self.pad_id)))
        return loaders

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        self.model(**model_inputs(batch, self.device))


def statistics_datasets(ctx, max_retain_people: int | None = None) -> dict:
    proc = ctx.processor
    forget, retain = ctx.benchmark.train_rows("forget"), ctx.benchmark.train_rows("retain")
    if max_retain_people:
        retain = retain.select(range(min(max_retain_people, len(retain))))
    return {f"{name}/{form}": QASequences(rows, proc, form)
            for name, rows in (("forget", forget), ("retain", retain)) for form in ("multimodal", "text")}


def run(ctx) -> None:
    m = ctx.cfg.manu
    refuse_fsdp(ctx.cfg, "manu", "its statistics pass is forward-only, so use trainer=ddp (a 7-8B model fits one GPU)")
    stats = ActivationStatistics(dict(ctx.cfg.model.mlp_modules), tau=m.tau, neuron=m.neuron)
    pruning = NeuronPruning(stats, alpha=m.alpha, score=m.score, weights=dict(m.weights) if m.weights else None,
                            scope=m.scope, mode=m.prune.mode, factor=m.prune.factor, out_dir=ctx.out_dir / "manu")
    module = ActivationPass(ctx.model, statistics_datasets(ctx, m.max_retain_people), m.batch_size,
                            ctx.processor.tokenizer.pad_token_id)
    trainer = ctx.trainer(callbacks=[stats, pruning], use_distributed_sampler=False, enable_model_summary=False)
    trainer.validate(module, verbose=False)
    ctx.artifacts["manu"] = {"alpha": m.alpha, "score": m.score, "scope": m.scope,
                             "pruned": {**pruning.summary["towers"], "total": pruning.summary["total"]}}
