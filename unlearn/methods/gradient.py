"""Gradient baselines (GA, gradient difference, KL minimisation, NPO) as one Lightning training step.

`method.schedule`: `paired` (default; open-unlearning's trainers, which draw each forget row's retain row
with replacement: `method.retain_draw=with_replacement`; the default reads a per-epoch shuffle) steps on a
forget batch and a retain batch together, one joint loss; `sequential` (MLLMU-Bench's baselines/*.py) runs,
each epoch, a pass over the forget data with the forget term alone, then a pass over the retain data with the retain term alone, each
batch its own optimiser step; `interleaved` (MMUnlearner's baselines, MLLMU_GA_Diff.py and MLLMU_KL_Min.py)
takes the same steps, each batch its own, with the forget steps spread through the retain pass as
MMUnlearner's own update spreads them (`unlearn.mmunlearner.schedule.official_schedule`). The loss math lives
in `unlearn.losses`, this module only runs the models.
The reference model (KL, NPO) is a frozen copy of the starting model, held once.
"""

from __future__ import annotations

import copy
import logging
import math
import warnings
from collections.abc import Callable
from contextlib import contextmanager

import lightning as L
import torch
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler

from unlearn import loss_settings, losses
from unlearn.checkpoint_io import last_every_epoch, resuming_in_place
from unlearn.data.collate import collate
from unlearn.data.sampling import EpochDraws, EpochShuffle, UnlabelledRepeats, in_batches, shifted
from unlearn.data.written import check_writing, qa_sequences
from unlearn.models.checkpoint_files import configured_model_types
from unlearn.models.loading import recipe_processor
from unlearn.models.precision import cast_copy, dtype_named, own_precision, round_parameters
from unlearn.models.vocab import resize_embeddings
from unlearn.eval.scoring import model_inputs
# imported from here too; they live apart so that the checks before a run need no Lightning (unlearn/before_run.py)
from unlearn.methods.gradient_settings import (FORGET_FORMS, LOSSES, LR_DECAYS, NEEDS_REFERENCE,
                                               RETAIN_DRAWS, SCHEDULES)
from unlearn.methods.guards import check_finite, refuse_non_finite_gradients
from unlearn.mmunlearner.lora import lora_targets
from unlearn.mmunlearner.schedule import official_schedule
from unlearn.optim import linear_schedule, make_optimizer
from unlearn.strategies import unwrapped_name

log = logging.getLogger(__name__)


class GradientUnlearning(L.LightningModule):
    def __init__(self, model: torch.nn.Module, loss: str, optimizer: Callable, gamma: float = 1.0,
                 alpha: float = 1.0, beta: float = 0.1, reference: torch.nn.Module | None = None,
                 scheduler: Callable | None = None, kl_reduction: str = "answer_mean",
                 npo_log_ratio: str = "sequence_sum", kl_retain_nll: bool = False, lr_decay: str | None = None,
                 warmup_epochs: int = 0, epochs: int | None = None, token_mean: str = "global",
                 reference_own_precision: bool = False, identity: dict | None = None,
                 npo_empty_rows: str = "skip"):
        """`reference`: the frozen starting model for KL / NPO; a copy of `model` when not given.
        `reference_own_precision`: the reference computes in its own dtype, out of the trainer's autocast
        (`method.reference_dtype`: the official float16 references, under any trainer that leaves it float16).
        `kl_retain_nll`: KL's retain term also descends on the retain NLL (MLLMU-Bench KL_Min.py: NLL + KL).
        `lr_decay`: linear = the lr falls linearly to 0 over the run's optimiser steps, no warmup (transformers'
        get_scheduler("linear"), as MLLMU-Bench's GA.py and NPO.py step it every batch); with `warmup_epochs` of
        the run's `epochs` rising first (CLEAR's forget.py: one epoch)."""
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"method.loss={loss!r}: expected one of {LOSSES}")
        if lr_decay not in LR_DECAYS:
            raise ValueError(f"method.lr_decay={lr_decay!r}: expected null or 'linear'")
        if lr_decay is not None and scheduler is not None:
            raise ValueError("method.lr_decay and method.scheduler both set: choose one (set the other to null)")
        if warmup_epochs and lr_decay != "linear":
            raise ValueError(f"method.warmup_epochs={warmup_epochs} warms up the linear decay: it needs "
                             f"method.lr_decay=linear (got {lr_decay!r})")
        self.kl_retain_nll, self.lr_decay = bool(kl_retain_nll), lr_decay
        self.warmup_epochs, self.epochs = warmup_epochs, epochs
        if kl_reduction not in loss_settings.KL_REDUCTIONS:
            raise ValueError(f"method.kl_reduction={kl_reduction!r}: expected one of {loss_settings.KL_REDUCTIONS}")
        if npo_log_ratio not in loss_settings.NPO_LOG_RATIOS:
            raise ValueError(f"method.npo_log_ratio={npo_log_ratio!r}: expected one of {loss_settings.NPO_LOG_RATIOS}")
        if npo_empty_rows not in loss_settings.NPO_EMPTY_ROWS:
            raise ValueError(f"method.npo_empty_rows={npo_empty_rows!r}: expected one of "
                             f"{loss_settings.NPO_EMPTY_ROWS}")
        self.kl_reduction, self.npo_log_ratio, self.npo_empty_rows = kl_reduction, npo_log_ratio, npo_empty_rows
        self.batch_mean = batch_mean_named(token_mean, "method.token_mean")
        self.model, self.loss_name, self.optimizer_factory = model, loss, optimizer
        self.gamma, self.alpha, self.beta = gamma, alpha, beta
        self.scheduler_factory = scheduler
        self.reference, self.reference_own_precision = None, reference_own_precision
        self.identity = identity  # what a checkpoint must match to be resumed (resume_identity)
        if loss in NEEDS_REFERENCE:
            ref = reference if reference is not None else copy.deepcopy(model)
            self.reference = ref.eval().requires_grad_(False)
            self.register_load_state_dict_post_hook(_reference_not_missing)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.identity is not None:
            checkpoint[RESUME_KEY] = self.identity
        drop_reference(checkpoint.get("state_dict"))

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Lightning calls this as `fit(ckpt_path=...)` restores, before any step: a checkpoint of other settings,
        or one that has already run this run's epochs, is refused (until 2026-12-05 it ran no step, or steps of
        the old settings, and saved the result under the new ones). A resume says where it starts (until the
        forty-fifth session it said nothing: a resumed run's log read as a fresh one's)."""
        completed = epochs_run(checkpoint)
        check_resume(checkpoint.get(RESUME_KEY), self.identity, completed, self.epochs)
        if completed is None or self.epochs is None or self.global_rank != 0:
            return
        if completed < self.epochs:
            log.info("method.ckpt_path: resuming after epoch %d of %d", completed, self.epochs)
        elif completed == self.epochs:  # killed after its training (in the evaluation, the writing)
            log.info("method.ckpt_path: the checkpoint has run all %d epochs; its weights are restored and evaluated, "
                     "nothing is trained (until 2026-12-06 refused: the unlearning had to be run again)", completed)

    def on_fit_start(self) -> None:
        # from_pretrained returns eval mode and Lightning keeps the mode it finds; on fit start, before Lightning
        # looks for modules left in eval mode (every GA run warned about 70)
        self.model.train()

    def on_train_start(self) -> None:
        stray = [n for n, m in self.named_modules() if not m.training and not n.startswith("reference")]
        if stray:  # the warning Lightning gives is silenced where there is a reference (frozen_reference_expected)
            raise RuntimeError(f"modules in eval mode at the start of unlearning: {stray[:5]}")

    def _logits(self, model, batch):
        # no key/value cache: a training forward reads none, and under trainer=fsdp's activation checkpointing the
        # recomputed forward appended to the cache again (attention over twice the keys: a shape error, seen with
        # trainer=fsdp_sim)
        return model(**model_inputs(batch, self.device), use_cache=False).logits

    def _ref_logits(self, batch):
        with torch.no_grad(), own_precision(self.device, self.reference_own_precision):
            self.reference.eval()  # whatever put the LightningModule in train mode, the reference never is
            return self._logits(self.reference, batch)

    @property
    def has_retain_term(self) -> bool:
        return self.loss_name in ("grad_diff", "kl") or (self.loss_name == "npo" and self.alpha > 0)

    def training_step(self, batch, batch_idx):
        # paired: {"forget", "retain"}; sequential, interleaved: one of them, the kind of step this batch makes
        f, r, mean = batch.get("forget"), batch.get("retain"), self.batch_mean(self.trainer)
        if r is None:
            loss = self._forget_term(f, mean)
        elif f is None:
            loss = self._retain_term(r, mean)
        else:
            loss = self._paired_loss(f, r, mean)
        check_finite(loss, self.global_step, f"the method={self.loss_name} loss")
        # each process holds W * (its share); their mean is the loss of the whole global batch
        size = (f if f is not None else r)["input_ids"].shape[0]
        self.log("unlearn/loss", loss, prog_bar=True, batch_size=size, sync_dist=True)
        return loss

    def _paired_loss(self, f, r, mean):
        fl = self._logits(self.model, f)
        if self.loss_name == "ga":
            return losses.ga_loss(fl, f["labels"], mean)
        if self.loss_name == "grad_diff":
            return losses.grad_diff_loss(fl, f["labels"], self._logits(self.model, r), r["labels"],
                                         self.gamma, self.alpha, mean)
        if self.loss_name == "kl":
            rl = self._logits(self.model, r)
            loss = losses.kl_loss(fl, f["labels"], rl, self._ref_logits(r), r["labels"], self.alpha, mean,
                                  self.kl_reduction, self.gamma)
            return loss + losses.mean_nll(rl, r["labels"], mean) if self.kl_retain_nll else loss
        retain = (self._logits(self.model, r), r["labels"]) if self.alpha > 0 else (None, None)
        return losses.npo_loss(fl, self._ref_logits(f), f["labels"], self.beta, *retain, alpha=self.alpha,
                               mean=mean, log_ratio=self.npo_log_ratio, gamma=self.gamma,
                               empty_rows=self.npo_empty_rows, fillers=f.get("filler"))

    def _forget_term(self, f, mean):
        """The loss of a forget step (schedule=sequential, interleaved): the paired loss without its retain term."""
        fl = self._logits(self.model, f)
        if self.loss_name == "npo":
            return losses.npo_loss(fl, self._ref_logits(f), f["labels"], self.beta, mean=mean,
                                   log_ratio=self.npo_log_ratio, gamma=self.gamma,
                                   empty_rows=self.npo_empty_rows, fillers=f.get("filler"))
        ascent = losses.ga_loss(fl, f["labels"], mean)
        return ascent if self.loss_name == "ga" else self.gamma * ascent

    def _retain_term(self, r, mean):
        """The loss of a retain step (schedule=sequential, interleaved): the paired loss's retain term alone."""
        rl = self._logits(self.model, r)
        if self.loss_name == "kl":
            term = self.alpha * losses.kl_retain(rl, self._ref_logits(r), r["labels"], mean, self.kl_reduction)
            return term + losses.mean_nll(rl, r["labels"], mean) if self.kl_retain_nll else term
        if not self.has_retain_term:
            raise ValueError(f"method {self.loss_name} (alpha {self.alpha}) has no retain term to step on")
        return self.alpha * losses.mean_nll(rl, r["labels"], mean)

    def on_before_optimizer_step(self, optimizer) -> None:
        refuse_non_finite_gradients(self, f"the method={self.loss_name} step")

    def configure_optimizers(self):
        opt = make_optimizer(self.optimizer_factory, [p for p in self.model.parameters() if p.requires_grad],
                             "method.optimizer")
        if self.lr_decay == "linear":
            scheduler = linear_schedule(opt, int(self.trainer.estimated_stepping_batches), key="method",
                                        warmup_epochs=self.warmup_epochs, epochs=self.epochs)
        elif self.scheduler_factory is not None:
            scheduler = self.scheduler_factory(opt)
        else:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def global_batch_mean(trainer) -> losses.Mean:
    """Means over the global batch: item counts summed across processes (1 process: the batch's own)."""
    def mean(total: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        n = trainer.strategy.reduce(count.detach().clone(), reduce_op="sum")
        return losses.global_mean(total, n, trainer.world_size)
    mean.world_size = trainer.world_size  # read by losses that must tell a padding-only shard from a bad batch
    return mean


def process_batch_mean(trainer) -> losses.Mean:
    """Means over this process's own batch (method.token_mean=process), as a per-device `outputs.loss` is; DDP then
    averages them. A batch of its shard's padding repeats alone adds nothing (it has no items to average)."""
    def mean(total: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        if trainer.world_size > 1 and count == 0:
            return total * 0.0
        return losses.global_mean(total, count.detach())  # total / count; one process: as global_batch_mean
    mean.world_size = trainer.world_size
    return mean


def batch_mean_named(token_mean: str, key: str) -> Callable:
    """The factory (trainer -> Mean) a `*.token_mean` setting names (loss_settings.TOKEN_MEANS)."""
    if token_mean not in loss_settings.TOKEN_MEANS:
        raise ValueError(f"{key}={token_mean!r}: expected one of {list(loss_settings.TOKEN_MEANS)}")
    return global_batch_mean if token_mean == "global" else process_batch_mean


def _unlearning_data(ctx, forget_modality: str, answer_only: bool, label_prefix: bool = False,
                     sequences: str = "template", answer_ids: str = "without_specials") -> tuple[Dataset, Dataset]:
    """Forget and retain QA sequences in the forms `data.forget_modality` names; `label_prefix`: the prompt's
    text before the question is labelled too (method.label_prefix, with answer_only false); `sequences`
    (method.sequences): the model's template, or a codebase's written strings (unlearn/data/written.py)."""
    if forget_modality not in FORGET_FORMS:
        raise ValueError(f"data.forget_modality={forget_modality!r}: expected one of {list(FORGET_FORMS)}")
    if label_prefix and answer_only:
        raise ValueError("method.label_prefix=true labels the prompt's prefix, which needs method.answer_only=false "
                         "(the question labelled too)")
    proc, forms = recipe_processor(ctx, "method"), FORGET_FORMS[forget_modality]

    def data(split: str) -> Dataset:
        return ConcatDataset([qa_sequences(ctx.benchmark.train_rows(split), proc, f, sequences, answer_only,
                                           label_prefix, key="method.sequences", answer_ids=answer_ids)
                              for f in forms])

    return data("forget"), data("retain")


def paired_loader(ctx, forget_modality: str, batch_size: int, answer_only: bool = True,
                  seed: int = 0, label_prefix: bool = False, sequences: str = "template",
                  retain_draw: str = "epoch", answer_ids: str = "without_specials") -> CombinedLoader:
    """Forget and retain batches side by side; an epoch is one pass over the forget data (retain data cycled
    when it is the shorter: min_size would end the epoch at the retain data's length). `retain_draw`
    (method.retain_draw): `epoch`, the retain rows shuffled each epoch and read from the start, as many as the
    forget rows (no repeat within an epoch; a larger retain set is sampled, not covered); `with_replacement`, one
    retain row drawn uniformly per forget row, anew each epoch (CLEAR's pairing)."""
    if retain_draw not in RETAIN_DRAWS:
        raise ValueError(f"method.retain_draw={retain_draw!r}: expected one of {RETAIN_DRAWS}")
    forget, retain = _unlearning_data(ctx, forget_modality, answer_only, label_prefix, sequences, answer_ids)
    pad = ctx.processor.tokenizer.pad_token_id
    make = lambda ds, sampler: DataLoader(ds, batch_size=batch_size, sampler=sampler,  # noqa: E731
                                          collate_fn=lambda b: unlearning_collate(b, pad))
    retain_rows = (EpochShuffle(len(retain), seed + 1) if retain_draw == "epoch"
                   else EpochDraws(len(retain), len(forget), seed + 1))
    loaders = {"forget": make(UnlabelledRepeats(forget), EpochShuffle(len(forget), seed)),
               "retain": make(UnlabelledRepeats(retain), retain_rows)}
    mode = "min_size" if len(loaders["retain"]) >= len(loaders["forget"]) else "max_size_cycle"
    return CombinedLoader(loaders, mode=mode)


def unlearning_collate(examples, pad: int) -> dict:
    """`collate`, with `filler` (a bool per row) where the batch holds a DDP shard's padding repeats: NPO's
    `method.npo_empty_rows=count` counts a row with no label token, but never one of those (model_inputs drops
    the key). Absent otherwise: one process's batches are as they were."""
    batch = collate(examples, pad)
    if any(e.filler for e in examples):
        batch["filler"] = torch.tensor([e.filler for e in examples])
    return batch


class PhaseBatches(Sampler[list[int]]):
    """Batches of a forget-then-retain concatenation: every forget batch of the epoch (its own seeded shuffle,
    sharded across ranks like EpochShuffle), then every retain batch (indices offset by the forget size), or
    none when `with_retain` is false. Every rank holds as many batches of each phase, so ranks change phase
    together."""

    def __init__(self, forget_size: int, retain_size: int, batch_size: int, seed: int = 0,
                 with_retain: bool = True, rank: int | None = None, world_size: int | None = None):
        self.forget = EpochShuffle(forget_size, seed, rank, world_size)
        self.retain = EpochShuffle(retain_size, seed + 1, rank, world_size)
        self.offset, self.batch_size, self.with_retain = forget_size, batch_size, with_retain
        self.sampler = self  # Lightning calls set_epoch on batch_sampler.sampler only (else every epoch is epoch 0's)

    def set_epoch(self, epoch: int) -> None:
        self.forget.set_epoch(epoch)
        self.retain.set_epoch(epoch)

    def __iter__(self):
        yield from in_batches(list(self.forget), self.batch_size)
        if self.with_retain:
            yield from ([shifted(j, self.offset) for j in b] for b in in_batches(list(self.retain), self.batch_size))

    def __len__(self) -> int:
        n = math.ceil(len(self.forget) / self.batch_size)
        return n + (math.ceil(len(self.retain) / self.batch_size) if self.with_retain else 0)


class InterleavedBatches(PhaseBatches):
    """PhaseBatches in MMUnlearner's baseline order (MLLMU_GA_Diff.py, MLLMU_KL_Min.py): every retain batch of the
    epoch once, each its own step, with a forget step before retain batch i whenever i % forget_freq == 0 and
    forget batches remain, forget_freq = n_retain_batches // n_forget_batches; so every forget batch is used once
    too (`official_schedule`). Batch counts per rank are the global counts, so every rank walks the same steps."""

    KEY = "method.schedule=interleaved"

    def __init__(self, forget_size: int, retain_size: int, batch_size: int, seed: int = 0,
                 rank: int | None = None, world_size: int | None = None):
        super().__init__(forget_size, retain_size, batch_size, seed, True, rank, world_size)
        counts = (math.ceil(len(self.forget) / batch_size), math.ceil(len(self.retain) / batch_size))
        official_schedule(*counts, key=self.KEY)  # fewer retain than forget batches: refused now

    def __iter__(self):
        forget = in_batches(list(self.forget), self.batch_size)
        retain = in_batches(list(self.retain), self.batch_size)
        for j, chunk in enumerate(official_schedule(len(forget), len(retain), key=self.KEY)):
            yield forget[j]
            yield from ([shifted(i, self.offset) for i in retain[k]] for k in chunk)


def sequential_loader(ctx, forget_modality: str, batch_size: int, answer_only: bool = True, seed: int = 0,
                      with_retain: bool = True, label_prefix: bool = False,
                      sequences: str = "template", interleaved: bool = False,
                      answer_ids: str = "without_specials") -> DataLoader:
    """method.schedule=sequential: batches {"forget": ...} for a pass over the forget data, then {"retain": ...}
    for a pass over the retain data (MLLMU-Bench GA_Difference.py, KL_Min.py); `with_retain` false: the forget
    pass only (GA, NPO without a retain term: GA.py, NPO.py). `interleaved` (method.schedule=interleaved): the
    same batches, the forget ones spread through the retain pass (InterleavedBatches)."""
    if interleaved and not with_retain:
        raise ValueError("method.schedule=interleaved spreads forget steps through a retain pass, and this method "
                         "has no retain term (ga, or npo with method.alpha=0): use method.schedule=sequential")
    forget, retain = _unlearning_data(ctx, forget_modality, answer_only, label_prefix, sequences, answer_ids)
    pad, n_forget = ctx.processor.tokenizer.pad_token_id, len(forget)

    def phase_collate(items):
        return {"forget" if items[0][0] < n_forget else "retain": unlearning_collate([e for _, e in items], pad)}

    sampler = (InterleavedBatches(n_forget, len(retain), batch_size, seed) if interleaved
               else PhaseBatches(n_forget, len(retain), batch_size, seed, with_retain))
    return DataLoader(_Indexed(UnlabelledRepeats(ConcatDataset([forget, retain]))), batch_sampler=sampler,
                      collate_fn=phase_collate)


class _Indexed(Dataset):
    """(index, item): the collate reads the phase from the index."""

    def __init__(self, ds: Dataset):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        return i, self.ds[i]


RESUME_KEY = "unlearn_resume_identity"
NOT_RESUME_IDENTITY = ("ckpt_path", "epochs")  # where to resume from; a run may be resumed for more epochs


def resume_identity(cfg) -> dict:
    """The settings a run's checkpoints are resumed under: the method's (but NOT_RESUME_IDENTITY), the seed,
    which orders the data, the forget split and modality, which choose it, and since 2026-12-05 the model the run
    started from (`model.path`, else the cached vanilla model's key) and the data it read (`data.name`,
    `data.path`): until then a checkpoint resumed onto another model.path ran on, its metrics.json naming the new
    model while the weights, the reference and the before-evaluation came from the old one. Since 2026-12-05 also
    the number of processes: `method.batch_size` is per process, so a checkpoint of one process resumed on two at
    its batch size ran on at twice the global batch, without a word. Only the keys both record are compared
    (check_resume), so a checkpoint made before these keys still resumes."""
    from omegaconf import OmegaConf

    from unlearn.pipeline import teaching_processes, vanilla_path

    from unlearn.models.checkpoint_files import resolved_path

    method = OmegaConf.to_container(cfg.method, resolve=True)
    source = resolved_path(cfg.model.path) if cfg.model.get("path") else vanilla_path(cfg).name
    data_path = cfg.data.get("path")
    return {"method": {k: v for k, v in method.items() if k not in NOT_RESUME_IDENTITY}, "seed": cfg.seed,
            "epochs": method.get("epochs"),  # compared apart: more epochs resume, unless the lr schedule spans them
            "data": {"forget_split": cfg.data.get("forget_split"), "forget_modality": cfg.data.get("forget_modality"),
                     "name": cfg.data.get("name"), "path": resolved_path(data_path) if data_path else None},
            "source_model": source, "processes": teaching_processes(cfg),
            # the processor read (model.processor_path, 2026-12-06): its pad id and settings shape the batches
            "processor": resolved_path(cfg.model.processor_path) if cfg.model.get("processor_path") else None}


def epochs_run(checkpoint: dict) -> int | None:
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    # an epoch-end checkpoint counts its epoch as processed, not yet completed (Lightning's fit_loop.done)
    return max(progress.get("processed") or 0, progress.get("completed") or 0) if progress else None


def read_training_checkpoint(path, key: str, whose: str, besides: str = "",
                             last: str = "<run dir>/checkpoints/last.ckpt") -> dict:
    """A Lightning training checkpoint named by `key` (method.ckpt_path, finetune.ckpt_path), its tensors
    memory-mapped, not read; a truncated file, another format or a model's weights file is refused by the key's
    name, pointing to `whose` `last` (`besides`: what else the user may have meant)."""
    import zipfile

    import torch

    if not zipfile.is_zipfile(path):
        raise ValueError(f"{key}={path}: not a checkpoint torch.save writes (a zip archive); is it truncated, or "
                         f"another format? Resume from {whose} {last}")
    try:
        checkpoint = torch.load(path, map_location="cpu", mmap=True, weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the key's name
        raise ValueError(f"{key}={path}: unreadable ({type(e).__name__}: {e})") from e
    missing = [k for k in ("state_dict", "loops") if not isinstance(checkpoint, dict) or k not in checkpoint]
    if missing:
        raise ValueError(f"{key}={path}: not a Lightning training checkpoint (no {', '.join(missing)}): resume "
                         f"from {whose} {last}{besides}")
    return checkpoint


def check_resume_file(path, cfg) -> None:
    """`method.ckpt_path` read and compared before the before-evaluation (hours on a 7B model), so that a
    truncated file, a model's weights file or a checkpoint of other settings is refused at once and by name
    (until 2026-12-05 the first two failed inside torch or Lightning, the last after the evaluation)."""
    checkpoint = read_training_checkpoint(path, "method.ckpt_path", "an interrupted run's",
                                          "; a model to unlearn is model.path")
    from unlearn.teaching_resume import IDENTITY_KEY

    if IDENTITY_KEY in checkpoint:  # its identity holds no method key, so nothing would have been compared
        raise ValueError(f"method.ckpt_path={path}: a teaching's checkpoint (method=finetune's, or an unlearning "
                         "run's teaching of its vanilla model: checkpoints/teaching/last.ckpt), which resumes with "
                         "+finetune.ckpt_path; an unlearning run resumes from its own <run dir>/checkpoints/last.ckpt")
    check_resume(checkpoint.get(RESUME_KEY), resume_identity(cfg), epochs_run(checkpoint), cfg.method.get("epochs"))


def check_resume(saved: dict | None, now: dict | None, completed: int | None, epochs: int | None) -> None:
    """Refuse resuming a checkpoint made under other settings, or one whose epochs this run has no more of. Only
    the settings both record are compared: a key added since the checkpoint was made is not a difference."""
    if saved is not None and now is not None:
        # a key added since the checkpoint was made reads as the value every run had before it (RESUME_ADDED,
        # later_keys.RUN's method keys); any other key one side lacks is not compared
        flat_saved, flat_now = {**saved_before_keys(now), **_flat(saved)}, _flat(now)
        keys = sorted(k for k in flat_saved.keys() & flat_now.keys() if flat_saved[k] != flat_now[k] and k != "epochs")
    else:
        keys = []
    if keys:
        shown = "; ".join(f"{k}: saved {flat_saved.get(k)!r}, now {flat_now.get(k)!r}" for k in keys[:5])
        # two cache keys say only that the vanilla model differs: what keys it (until 2026-12-06 unsaid)
        why = (" (source_model: another cached vanilla model, whose key a teaching setting moves: finetune.*, "
               "teach_seed, a trainer key, the thread count; docs/guide/teaching_and_cache.md)"
               if "source_model" in keys else "")
        raise ValueError(f"method.ckpt_path: the checkpoint was saved under other settings ({shown}"
                         f"{' ...' if len(keys) > 5 else ''}){why}; resume with the settings it was made with, or "
                         "start afresh without method.ckpt_path")
    if completed is not None and epochs is not None and completed > epochs:
        raise ValueError(f"method.ckpt_path: the checkpoint has run {completed} epochs, more than this run's "
                         f"method.epochs={epochs}")
    made_for = (saved or {}).get("epochs")
    method = (now or {}).get("method", {})
    if made_for not in (None, epochs) and (method.get("lr_decay") is not None or method.get("scheduler") is not None):
        # the schedule's length is the run's steps: resumed for more epochs, the lr rose again from where the
        # saved schedule had brought it (0 at its end), a run neither setting makes (until 2026-12-06 unrefused)
        raise ValueError(f"method.ckpt_path: the checkpoint was made for method.epochs={made_for}, whose lr schedule "
                         f"(method.lr_decay / method.scheduler) spans those epochs; resumed for {epochs} it would "
                         f"follow neither schedule: resume with method.epochs={made_for}, or start afresh")


# resume-identity keys added after checkpoints were saved without them, at the value those checkpoints ran under:
# the processor (model.processor_path, 2026-12-06) was the checkpoint's own
RESUME_ADDED = {"processor": None}


def saved_before_keys(now: dict) -> dict:
    """The flat identity keys a checkpoint saved before they existed ran under, where `now` records them: so a
    checkpoint of the checkpoint's own processor (or of NPO's skipped empty rows) is not resumed under another
    (until 2026-12-06 a key the checkpoint lacked was never compared)."""
    from unlearn import later_keys

    added = {**RESUME_ADDED, **{k: v for k, v in later_keys.RUN.items() if k.startswith("method.")}}
    flat_now = _flat(now)
    return {k: v for k, v in added.items() if k in flat_now}


def _flat(node, prefix: str = "") -> dict:
    if not isinstance(node, dict):
        return {prefix: node}
    out = {}
    for k, v in node.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def check_before_evaluation(ctx, world: int) -> None:
    """What the model's structure and the data sizes alone refuse, checked before the before-evaluation
    (pipeline.check_method_before_evaluation); `run` reaches them after it: method.lora's targets (the adapters
    are made in `run`), and under method.schedule=interleaved fewer retain than forget batches (InterleavedBatches,
    made with the loader; the settings refuse the schedule for a method without a retain term)."""
    from unlearn.mmunlearner.lora import check_targets

    m = ctx.cfg.method
    check_targets(ctx.model, m.get("lora"), ctx.cfg.model, "method.lora")
    if m.get("schedule", "paired") == "interleaved":
        sequential_loader(ctx, ctx.cfg.data.forget_modality, m.batch_size, m.answer_only, ctx.cfg.seed, True,
                          m.get("label_prefix", False), m.get("sequences", "template"), interleaved=True,
                          answer_ids=m.get("answer_ids", "without_specials"))


def run(ctx) -> None:
    from hydra.utils import instantiate

    m = ctx.cfg.method
    check_writing(m.get("sequences", "template"), ctx.processor.family,  # before a reference model loads
                  FORGET_FORMS.get(ctx.cfg.data.forget_modality, ()), "method.sequences")
    if m.get("start_precision"):  # as a load in that precision, upcast; so KL's reference is the rounded start
        round_parameters(ctx.model, dtype_named(m.start_precision, "method.start_precision"))
    resize = m.get("resize_embeddings")
    resize_embeddings(ctx.model, ctx.processor.tokenizer, resize, "method.resize_embeddings")  # before LoRA, as GA.py
    model, reference = ctx.model, None
    ref_dtype = m.get("reference_dtype")
    if ref_dtype and m.loss in NEEDS_REFERENCE and not m.reference_path:  # before LoRA: a copy without adapters
        reference = cast_copy(ctx.model, dtype_named(ref_dtype, "method.reference_dtype"))
    if m.lora.enabled:
        # no copy where method.reference_path gives the reference (a whole model held through the fit until
        # 2026-12-05, about 28 GB at 7B shape in float32)
        model, lora_reference = with_lora(ctx.model, m.lora, lora_targets(m.lora, ctx.cfg.model, "method.lora"),
                                          m.loss in NEEDS_REFERENCE and reference is None and not m.reference_path)
        reference = reference if reference is not None else lora_reference
    if m.reference_path and m.loss not in NEEDS_REFERENCE:  # a sweep over methods may pass it to all of them
        log.warning("method.reference_path=%s is read by KL and NPO only: not loaded for method.loss=%s",
                    m.reference_path, m.loss)
    elif m.reference_path:  # e.g. MLLMU-Bench's NPO reference: the base model taught the retain people
        from unlearn.models.loading import load_model

        reference, _ = load_model(m.reference_path, ref_dtype or ctx.cfg.model.dtype, key="method.reference_path",
                                  template=ctx.cfg.model.get("template"),
                                  attn_implementation=ctx.cfg.model.get("attn_implementation"),
                                  model_types=configured_model_types(ctx.cfg.model),
                                  # the run's processor, as NPO.py reads its oracle's weights alone: a reference
                                  # saved without processor files loads (its processor is never used)
                                  processor_path=ctx.cfg.model.get("processor_path"))
        resize_embeddings(reference, ctx.processor.tokenizer, resize, "method.resize_embeddings")  # same logits
        from unlearn.models.positions import apply_forward_positions

        apply_forward_positions(reference, ctx.cfg.model.get("forward_positions", "mrope"))  # the same transformers
    module = GradientUnlearning(model, m.loss, instantiate(m.optimizer), m.gamma, m.alpha, m.beta, reference,
                                instantiate(m.scheduler) if m.scheduler else None, m.kl_reduction, m.npo_log_ratio,
                                m.get("kl_retain_nll", False), m.get("lr_decay"), m.get("warmup_epochs", 0),
                                m.epochs, m.get("token_mean", "global"), reference_own_precision=bool(ref_dtype),
                                identity=resume_identity(ctx.cfg),
                                npo_empty_rows=m.get("npo_empty_rows", "skip"))
    schedule, prefix = m.get("schedule", "paired"), m.get("label_prefix", False)
    sequences, answer_ids = m.get("sequences", "template"), m.get("answer_ids", "without_specials")
    if schedule == "paired":
        loader = paired_loader(ctx, ctx.cfg.data.forget_modality, m.batch_size, m.answer_only, ctx.cfg.seed,
                               prefix, sequences, m.get("retain_draw", "epoch"), answer_ids)
    elif schedule in ("sequential", "interleaved"):
        loader = sequential_loader(ctx, ctx.cfg.data.forget_modality, m.batch_size, m.answer_only, ctx.cfg.seed,
                                   module.has_retain_term, prefix, sequences, interleaved=schedule == "interleaved",
                                   answer_ids=answer_ids)
    else:
        raise ValueError(f"method.schedule={schedule!r}: expected one of {SCHEDULES}")
    checkpoints, atomic = last_every_epoch(ctx.out_dir / "checkpoints")
    trainer = ctx.trainer(max_epochs=m.epochs, callbacks=[checkpoints], enable_checkpointing=True,
                          use_distributed_sampler=False,  # EpochShuffle shards itself
                          plugins=[atomic])
    with frozen_reference_expected(module), resuming_in_place(m.ckpt_path):
        trainer.fit(module, loader, ckpt_path=m.ckpt_path)
    if m.lora.enabled:
        ctx.model = model.merge_and_unload()  # a plain model again: evaluated and saved like any other
    ctx.model.eval()


def is_reference_key(key: str) -> bool:
    """A state-dict key of the frozen reference, also as FSDP's and activation checkpointing's wrappers name it."""
    return unwrapped_name(key).startswith("reference.")


def drop_reference(state: dict | None) -> None:
    """The frozen reference is left out of checkpoints: it is the starting model (or `method.reference_path`),
    which a resumed run loads again, and at 7B it doubled every last.ckpt (until 2026-12-05, about 14 GB more
    in bfloat16 at LLaVA-1.5-7B)."""
    for key in [k for k in state or () if is_reference_key(k)]:
        del state[key]


def _reference_not_missing(module, incompatible) -> None:
    """A checkpoint without the reference's weights still loads strictly; every other key must be there. A
    checkpoint from before 2026-12-05, which holds them, loads them as before."""
    incompatible.missing_keys[:] = [k for k in incompatible.missing_keys if not is_reference_key(k)]



@contextmanager
def frozen_reference_expected(module: GradientUnlearning):
    """Lightning warns, as fitting starts, about every module it finds in eval mode; KL's and NPO's frozen
    reference is in eval mode on purpose, so that warning is silenced for them. The model being unlearned is
    checked instead: it must be the only thing in train mode."""
    with warnings.catch_warnings():
        if module.reference is not None:
            warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
        yield


def with_lora(model, lora_cfg, target_modules, need_reference: bool):
    """Wrap `model` with LoRA adapters (peft); the reference is copied first, so it has no adapters.
    `target_modules`: module-name suffixes, one regex string (peft full-matches it against module names), or
    `all_linear` (every Linear but lm_head and the embeddings, both towers: MMUnlearner's find_all_linear_names),
    or `all_linear_and_head` (the same with lm_head, as that function adapts LLaVA under their transformers)."""
    from peft import LoraConfig, get_peft_model

    from unlearn.mmunlearner.lora import peft_targets

    reference = copy.deepcopy(model) if need_reference else None
    init = lora_cfg.get("init", True)  # peft's init_lora_weights: true (B = 0) | gaussian | pissa | ...
    # dropout may be left out (check_lora's default): `+finetune.lora={enabled: true, r: 8, alpha: 16}` stopped
    # here until 2026-12-03
    config = LoraConfig(r=lora_cfg.r, lora_alpha=lora_cfg.alpha, lora_dropout=lora_cfg.get("dropout", 0.0),
                        target_modules=peft_targets(model, target_modules), init_lora_weights=init)
    return get_peft_model(model, config), reference
