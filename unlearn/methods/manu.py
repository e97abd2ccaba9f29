"""MANU (modality-aware neuron unlearning): one no-grad pass gathers statistics, then neurons are pruned.

The pass runs as a Lightning validation over four dataloaders (forget / retain x multimodal / text-only);
`ActivationStatistics` (`OfficialActivationStatistics` under `manu.selection=official`) streams per-neuron
statistics and `NeuronPruning` scores, selects and zeroes neurons.
"""

from __future__ import annotations

from collections import Counter

import lightning as L
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from callbacks.activation_stats import ActivationStatistics
from callbacks.neuron_pruning import NeuronPruning
from callbacks.official_stats import OfficialActivationStatistics, own_tower
from unlearn.data.benchmark import first_people
from unlearn.data.collate import collate
from unlearn.data.sampling import rank_share
from unlearn.data.sequences import QASequences
from unlearn.data.written import WrittenSequences
from unlearn.eval.scoring import model_inputs
from unlearn.fsdp_refusals import refuse_fsdp
from unlearn.manu.choices import SELECTIONS
from unlearn.manu.official import ONE_ROW, official_batches, pooled_modules
from unlearn.models.loading import recipe_processor


class ActivationPass(L.LightningModule):
    """A forward-only pass; each rank reads a disjoint shard (no repeated samples, so sums are exact).

    `plans` (manu.selection=official): key -> the global list of (chunk, row indices) batches; rank r reads
    batches r, r + W, ... whole, and `batch_chunks[dataloader_idx][batch_idx]` names each one's chunk.
    """

    def __init__(self, model: torch.nn.Module, datasets: dict, batch_size: int, pad_id: int,
                 plans: dict | None = None):
        super().__init__()
        # a statistics set with fewer rows than processes leaves some process none of it (row_share), which adds
        # nothing to the sums; Lightning refuses such a loader unless told
        self.allow_zero_length_dataloader_with_multiple_devices = True
        self.model, self.datasets = model, datasets
        self.loader_keys = list(datasets)
        self.batch_size, self.pad_id = batch_size, pad_id
        self.plans = plans
        self.num_chunks = {k: 1 + max(c for c, _ in plan) for k, plan in plans.items()} if plans else {}
        self.batch_chunks: list[list[int]] = []

    def val_dataloader(self):
        if self.plans is not None:
            return self._planned_loaders()
        check_every_process_reads(self.datasets, self.trainer.world_size)  # every rank alike: none waits
        loaders = []
        for ds in self.datasets.values():
            sampler = None
            if self.trainer.world_size > 1:
                sampler = row_share(len(ds), self.trainer.global_rank, self.trainer.world_size)
            loaders.append(DataLoader(ds, batch_size=self.batch_size, sampler=sampler,
                                      collate_fn=lambda b: collate(b, self.pad_id)))
        return loaders

    def _planned_loaders(self):
        world, rank = self.trainer.world_size, self.trainer.global_rank
        loaders, self.batch_chunks = [], []
        for key, ds in self.datasets.items():
            mine = rank_share(self.plans[key], rank, world, pass_name(key), "manu.batch_size")
            self.batch_chunks.append([c for c, _ in mine])
            loaders.append(DataLoader(ds, batch_sampler=[idx for _, idx in mine],
                                      collate_fn=lambda b: collate(b, self.pad_id)))
        return loaders

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        # the hooks read the MLPs; the logits over every position and the key/value cache are never read, and
        # on a 7B model they are rows x length x vocab and layers x rows x length x width
        self.model(**model_inputs(batch, self.device), use_cache=False, logits_to_keep=1)


def row_share(size: int, rank: int, world: int) -> list[int]:
    """The rows of a statistics set that process `rank` of `world` reads: every world-th from its rank, each row
    once over the processes, as Lightning's UnrepeatedDistributedSampler(shuffle=False) shares them, but possibly
    none (that sampler asserts at least one: until the forty-third session a forget set of one row on two
    processes stopped rank 1 with a bare AssertionError after the before-evaluation). Every statistic is a sum, so
    a process without rows adds zeros and the pass gives the one-process statistics."""
    return list(range(rank, size, world))


def check_every_process_reads(datasets: dict, world: int) -> None:
    """A process with no row of any statistics set skips Lightning's whole validation, its all-reduce of the
    statistics too, and the others wait for it forever: refused by name (rows = sequences, each person's QA pairs
    in each form)."""
    if world > 1 and max((len(ds) for ds in datasets.values()), default=0) < world:
        sizes = ", ".join(f"{k}: {len(ds)}" for k, ds in datasets.items())
        raise ValueError(f"MANU's statistics pass: every statistics set has fewer rows than the {world} processes "
                         f"({sizes}), so process {world - 1} would read none and the others would wait for it; "
                         f"give more people (data.forget_split, manu.max_retain_people) or fewer processes "
                         f"(trainer.devices)")


def statistics_datasets(ctx, max_retain_people: int | None = None, sequences: str = "template") -> dict:
    """forget / retain x multimodal / text-only sequences; `sequences` (manu.sequences): the model's template,
    or a codebase's written strings and rows (unlearn/data/written.py; `manu`: the authors')."""
    proc = recipe_processor(ctx, "manu")
    forget, retain = ctx.benchmark.train_rows("forget"), ctx.benchmark.train_rows("retain")
    if max_retain_people:  # people, not rows: CLEAR has a row per image
        retain = first_people(retain, max_retain_people)
    rule = OmegaConf.select(ctx.cfg, "data.spec.text_rule") if hasattr(ctx, "cfg") else None
    if sequences == "manu" and rule not in (None, "manu"):
        raise ValueError(f"manu.sequences=manu reads the MANU authors' text-only rows, which "
                         f"data.spec.text_rule={rule} rewrites; set data.spec.text_rule=manu")
    if sequences == "template":
        make = lambda rows, form: QASequences(rows, proc, form)  # noqa: E731
    else:  # an unknown value is refused, naming the key, by the writing's own check
        make = lambda rows, form: WrittenSequences(rows, proc, form, sequences, labels=False,  # noqa: E731
                                                   key="manu.sequences")
    return {f"{name}/{form}": make(rows, form)
            for name, rows in (("forget", forget), ("retain", retain)) for form in ("multimodal", "text")}


def pass_name(key: str) -> str:
    return f"MANU's statistics pass ({key})"


def check_before_evaluation(ctx, world: int) -> None:
    """What the statistics pass and the pruning refuse from the data sizes, the process count and the model's
    structure alone, checked before the before-evaluation (pipeline.check_method_before_evaluation); `run` reaches
    them after it (hours at 7B), the pooled layers only after the whole pass: the hooked modules' patterns
    (match_modules), manu.official.layers against the model's layers (pooled_modules) and a process left with no
    batch of a planned loader (rank_share)."""
    m = ctx.cfg.manu
    selection = m.get("selection", "project")
    stats, pruning = pass_callbacks(ctx, selection)
    stats.attach(ctx.model)
    stats.detach()
    if selection != "official":  # the project's loaders share rows (row_share), not fixed batches
        if world > 1:
            check_every_process_reads(statistics_datasets(ctx, m.max_retain_people, m.get("sequences", "template")),
                                      world)
        return
    if stats.pooled:
        pooled_modules(stats.units, stats.towers, pruning.apply_last, pruning.layers)
    o = m.official
    datasets = statistics_datasets(ctx, m.max_retain_people, m.get("sequences", "template"))
    members = Counter(stats.units.values())  # the modules whose rows a unit's batch statistics add up
    for key, plan in official_plans(datasets, m.batch_size, o.chunk_size, o.seed,
                                    o.get("retain_subset", True)).items():
        rank_share(plan, 0, world, pass_name(key), "manu.batch_size")  # every rank's share is refused alike
        fewest = min((members[u] for n, u in stats.units.items() if stats.towers[n] == own_tower(key)), default=2)
        if fewest < 2 and any(len(rows) < 2 for _, rows in plan):  # BatchPositionSums.position_totals: < 2 rows
            raise ValueError(ONE_ROW)


def official_plans(datasets: dict, batch_size: int, chunk_size: int, seed: int, retain_subset: bool = True) -> dict:
    """The authors' reading order per loader: forget loaders in full, retain loaders only as many batches as
    the forget set has (a random retain subset of its size; `retain_subset=false`: all of the retain set),
    each loader with its own seeded permutations."""
    plans = {}
    for i, (key, ds) in enumerate(datasets.items()):
        sized_by = datasets[key.replace("retain/", "forget/")] if retain_subset else ds
        n_batches = -(-len(sized_by) // batch_size)
        plans[key] = official_batches(len(ds), batch_size, n_batches, chunk_size, seed + i)
    return plans


def official_statistics(m, model_cfg) -> OfficialActivationStatistics:
    """The authors' statistics callback: their hooked Linears (`model.manu_official_modules`), or the
    project's unit under their statistics (`manu.official.unit=intermediate`)."""
    unit = m.official.get("unit", "output")
    patterns = model_cfg.get("manu_official_modules") if unit == "output" else model_cfg.mlp_modules
    if not patterns:
        raise ValueError(f"manu.selection=official needs model.manu_official_modules (model {model_cfg.name})")
    return OfficialActivationStatistics(dict(patterns), pooled=m.official.pooled_layers, clamp=m.official.clamp,
                                        tau=m.tau, unit=unit)  # tau: their 0.1 is manu.tau's default


def pass_callbacks(ctx, selection: str) -> tuple:
    """The statistics callback of `manu.selection` and the pruning that reads it."""
    m = ctx.cfg.manu
    if selection == "official":
        stats = official_statistics(m, ctx.cfg.model)
    elif selection == "project":
        stats = ActivationStatistics(dict(ctx.cfg.model.mlp_modules), tau=m.tau, neuron=m.neuron,
                                     mask_padding=m.get("mask_padding", True))
    else:
        raise ValueError(f"manu.selection={selection!r}: expected one of {list(SELECTIONS)}")
    pruning = NeuronPruning(stats, alpha=m.alpha, score=m.score, weights=dict(m.weights) if m.weights else None,
                            scope=m.scope, mode=m.prune.mode, factor=m.prune.factor, out_dir=ctx.out_dir / "manu",
                            apply_last=m.official.apply_last if selection == "official" else 0,
                            seed=ctx.cfg.seed, layers=m.official.get("layers") if selection == "official" else None)
    return stats, pruning


def run(ctx) -> None:
    m = ctx.cfg.manu
    refuse_fsdp(ctx.cfg, "manu")
    selection = m.get("selection", "project")
    datasets = statistics_datasets(ctx, m.max_retain_people, m.get("sequences", "template"))
    plans = None
    if selection == "official":
        o = m.official
        if m.score != "reference" or m.scope != "tower":
            raise ValueError(f"manu.selection=official uses the authors' score and one top-alpha per tower; "
                             f"manu.score={m.score!r} / manu.scope={m.scope!r} must be 'reference' / 'tower'")
        plans = official_plans(datasets, m.batch_size, o.chunk_size, o.seed, o.get("retain_subset", True))
    stats, pruning = pass_callbacks(ctx, selection)
    module = ActivationPass(ctx.model, datasets, m.batch_size, ctx.processor.tokenizer.pad_token_id, plans)
    trainer = ctx.trainer(callbacks=[stats, pruning], use_distributed_sampler=False, enable_model_summary=False)
    trainer.validate(module, verbose=False)
    ctx.artifacts["manu"] = {"alpha": m.alpha, "score": m.score, "scope": m.scope, "selection": selection,
                             "pruned": {**pruning.summary["towers"], "total": pruning.summary["total"]}}
    if selection == "official":
        ctx.artifacts["manu"]["clamped_on_rank0"] = stats.clamped  # activations beyond +-manu.official.clamp
