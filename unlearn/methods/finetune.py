"""Teaching: plain next-token loss on the answer tokens (on every token with `answer_only=false`). Builds the
'vanilla' model; the same module runs the relearning attack (unlearn/relearn.py) and the organism's base
pretraining (unlearn/models/base.py)."""

from __future__ import annotations

import re
from collections.abc import Callable

import lightning as L
import torch

from hydra.utils import instantiate

from unlearn.checkpoint_io import last_every_epoch, resuming_in_place
from unlearn.data.collate import IGNORE
from unlearn.later_keys import split_floor_read
from unlearn.methods.finetune_settings import check_settings
from unlearn.methods.guards import check_finite, refuse_non_finite_gradients
from unlearn.models.precision import DTYPES, cast_parameters, round_parameters
from unlearn.models.vocab import resize_embeddings
from unlearn.teaching_resume import GIVEN_AS


class FinetuneModule(L.LightningModule):
    # the key that resumes a teaching from its checkpoint (callbacks/interrupt_notice.py names it)
    resume_key = GIVEN_AS

    def __init__(self, model: torch.nn.Module, optimizer: Callable, scheduler: Callable | None = None,
                 config_key: str = "finetune", token_mean: str = "global", identity: dict | None = None,
                 epochs: int | None = None):
        """`identity`: what a checkpoint of this teaching must match to be resumed (teaching_resume.
        teaching_identity), saved in every checkpoint; `epochs`: finetune.epochs, for the resume's log line."""
        super().__init__()
        self.identity, self.epochs = identity, epochs
        from unlearn.methods.gradient import batch_mean_named

        # what each process's loss averages over under DDP (loss_settings.TOKEN_MEANS; the official scripts': process)
        self.batch_mean = batch_mean_named(token_mean, f"{config_key}.token_mean")
        self.config_key = config_key  # where the recipe lives, for error messages (model.base: stage 1)
        self.model = model
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        from unlearn.teaching_resume import IDENTITY_KEY

        if self.identity is not None:
            checkpoint[IDENTITY_KEY] = self.identity

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Lightning calls this as `fit(ckpt_path=...)` restores, before the callbacks' state and any step: a
        checkpoint of another teaching is refused (the run checked the file before its before-evaluation too);
        a resume says where it starts."""
        from unlearn.methods.gradient import epochs_run
        from unlearn.teaching_resume import IDENTITY_KEY, check_teaching_resume, say_where_it_resumes

        if self.identity is None:
            return
        completed = epochs_run(checkpoint)
        check_teaching_resume(checkpoint.get(IDENTITY_KEY), self.identity, completed, self.epochs)
        probe = next((v for k, v in checkpoint.get("callbacks", {}).items() if k.startswith("MemorisationCheck")), {})
        if self.global_rank == 0:
            say_where_it_resumes(completed, self.epochs, bool(probe.get("stopped")))

    def apply_to_model(self, fn):
        """`fn(self.model)`: a callback's work on the model, routed through the strategy's wrapper (FSDP gathers the
        root unit's weights only in its forward; callbacks/memorisation.py)."""
        return fn(self.model)

    def on_fit_start(self) -> None:
        # from_pretrained returns eval mode and Lightning keeps the mode it finds; on fit start, before Lightning
        # looks for modules left in eval mode (and warns: a relearning attack on a loaded model did)
        self.model.train()

    def training_step(self, batch, batch_idx):
        out = self.model(**batch, use_cache=False)  # see gradient.py _logits
        loss = check_finite(self._loss(out, batch["labels"]), self.global_step, f"the {self.config_key} loss")
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0], sync_dist=True)
        return loss

    def _loss(self, out, labels: torch.Tensor) -> torch.Tensor:
        """The model's own loss (its mean over this batch's answer tokens) on one process, as ever; on W, this
        batch's token sum through the token mean the module takes (gradient.global_batch_mean: its DDP average is
        the one-process mean). A batch whose tokens are padding repeats alone adds nothing (the model's mean over
        no tokens is nan)."""
        if self.trainer.world_size == 1:
            return out.loss
        count = (labels[:, 1:] != IGNORE).sum()  # the tokens the model's shifted loss averages over
        total = out.loss * count if count > 0 else out.logits.sum() * 0.0
        return self.batch_mean(self.trainer)(total, count)

    def on_before_optimizer_step(self, optimizer) -> None:
        refuse_non_finite_gradients(self, f"the {self.config_key} step")

    def configure_optimizers(self):
        from unlearn.optim import make_optimizer

        opt = make_optimizer(self.optimizer_factory, [p for p in self.model.parameters() if p.requires_grad],
                             f"{self.config_key}.optimizer")
        if self.scheduler_factory is None:
            return opt
        from unlearn.teaching_steps import check_pct_start

        total = self.trainer.estimated_stepping_batches
        # the vanilla teaching's was refused before any model was built (pipeline: teaching_steps); the organism's
        # base pretraining (model.base) is refused here
        check_pct_start(self.scheduler_factory, total, f"{self.config_key}.scheduler")
        return {"optimizer": opt, "lr_scheduler": {"scheduler": self.scheduler_factory(opt, total_steps=total),
                                                    "interval": "step"}}


def check_family(wanted: str | None, family: str, model_name: str) -> None:
    """An official script branches on the model (MMUnlearner's load each family in its own precision, with their own
    LoRA rank), so a preset copies one branch and names its family: the recipe of one family run on another would
    be neither script's."""
    if wanted is not None and wanted != family:
        raise ValueError(f"finetune.family={wanted}: this recipe is its script's {wanted} branch, but model={model_name} "
                         f"is a {family} model; pick the preset of the model's family (configs/finetune/*.yaml) or "
                         f"set finetune.family=null to run this recipe anyway")


def teach(ctx, fcfg, checkpoints=None, resume=None) -> None:
    """Fit `ctx.model` on every person of the benchmark (forget, retain and untouched), both forms; with
    `finetune.people=without_forget`, on everyone but the forget people (a reference model).
    `checkpoints`: a directory where each epoch's end writes last.ckpt (atomically), holding all a resume needs;
    `resume`: such a last.ckpt to go on from (finetune.ckpt_path), giving the weights an uninterrupted teaching
    gives (unlearn/teaching_resume.py)."""
    from unlearn.data.collate import collate
    from unlearn.data.written import qa_sequences
    from unlearn.eval.protocol import family_of
    from unlearn.models.loading import section_processor
    from unlearn.models.unknown_words import warn_unknown_words

    from callbacks.memorisation import MemorisationCheck
    from unlearn.eval.items import as_checked, flatten, refused_by_checks

    check_settings(fcfg)
    people = fcfg.get("people", "all")
    proc = section_processor(ctx.processor, fcfg, "finetune")
    check_family(fcfg.get("family"), family_of(ctx.processor), ctx.cfg.model.name)
    rows = ctx.benchmark.train_rows(people)  # once: selecting people filters every row, portraits decoded
    data = qa_sequences(rows, proc, tuple(fcfg.forms),
                        fcfg.get("sequences", "template"), fcfg.answer_only, fcfg.get("label_prefix", False),
                        key="finetune.sequences", augment=True, seed=ctx.cfg.teach_seed,
                        answer_ids=fcfg.get("answer_ids", "without_specials"))
    if getattr(ctx, "is_global_zero", True):  # said once, not by every process
        warn_unknown_words(proc.tokenizer, rows, ctx.cfg.model.name, ctx.cfg.data.get("path"),
                           family_of(proc), embedded=ctx.cfg.model.get("build") is not None)
    if fcfg.get("start_precision") is not None:  # a load in that precision, then the upcast (finetune.dtype)
        round_parameters(ctx.model, DTYPES[fcfg.start_precision])
    if fcfg.get("dtype") is not None:
        cast_parameters(ctx.model, DTYPES[fcfg.dtype])
    # MMUnlearner's MLLMU_finetune.py and MLLMU_reference.py: resize_token_embeddings(len(tokenizer)), before LoRA
    resize_embeddings(ctx.model, ctx.processor.tokenizer, fcfg.get("resize_embeddings"), "finetune.resize_embeddings")
    pad = ctx.processor.tokenizer.pad_token_id
    loader = shuffled_loader(data, fcfg.batch_size, lambda b: collate(b, pad), num_workers=fcfg.num_workers)
    frozen = freeze(ctx.model, fcfg.frozen)
    lora = fcfg.get("lora")
    model = ctx.model
    if lora is not None and lora.enabled:  # MLLMU-Bench's vanilla models may be LoRA fine-tunes
        from unlearn.methods.gradient import with_lora
        from unlearn.mmunlearner.lora import lora_targets

        model, _ = with_lora(ctx.model, lora, lora_targets(lora, ctx.cfg.model, "finetune.lora"), need_reference=False)
    identity = None
    if checkpoints is not None:
        from unlearn.teaching_resume import teaching_identity

        identity = teaching_identity(ctx.cfg)
    module = FinetuneModule(model, instantiate(fcfg.optimizer), instantiate(fcfg.scheduler),
                            token_mean=fcfg.get("token_mean") or "global", identity=identity, epochs=fcfg.epochs)
    callbacks = []
    if fcfg.target_mc_acc is not None:
        probe, whole = [], []
        floor = fcfg.target_split_mc_acc if split_floor_read(fcfg) else None
        for split in ("forget", "retain") if people == "all" else ("retain",):  # never probe the untaught
            rows = ctx.benchmark.eval[split]
            # an MC question kept only by data.on_bad_row=score has no taught answer to read: the probe reads
            # the questions data.on_bad_row=skip keeps, as it reads them (as_checked, refused_by_checks)
            head = rows.select(range(min(fcfg.probe_people, len(rows))))
            probe += [it for it in flatten(split, map(as_checked, head), ctx.processor.pixel_values)
                      if not refused_by_checks(it)]
            if floor is not None:  # the whole split: every cell the evaluation reports of the taught people
                whole += [it for it in flatten(split, map(as_checked, rows), ctx.processor.pixel_values)
                          if not refused_by_checks(it)]
        callbacks.append(MemorisationCheck(probe, ctx.processor, fcfg.target_mc_acc, fcfg.check_every,
                                           anneal_epochs=fcfg.get("anneal_epochs", 0), split_items=whole,
                                           split_target=floor))
    overrides = {}
    if fcfg.get("precision") is not None:  # MLLMU-Bench: fp32 throughout (Accelerator() without mixed precision)
        overrides["precision"] = str(fcfg.precision)
    if "gradient_clip_val" in fcfg:  # present: this, null = no clipping; absent: the trainer's (1.0)
        overrides["gradient_clip_val"] = fcfg.gradient_clip_val
    if fcfg.get("accumulate_grad_batches") is not None:  # CLEAR's finetune.py: 2
        overrides["accumulate_grad_batches"] = fcfg.accumulate_grad_batches
    if checkpoints is not None:
        from callbacks.resumable_draws import ResumableDraws

        every_epoch, atomic = last_every_epoch(checkpoints)
        callbacks += [ResumableDraws(data), every_epoch]
        overrides["plugins"] = [atomic]
    elif resume is not None:
        raise ValueError("finetune.ckpt_path: this teaching writes no checkpoint to resume into")
    trainer = ctx.trainer(max_epochs=fcfg.epochs, enable_checkpointing=checkpoints is not None, callbacks=callbacks,
                          use_distributed_sampler=False, **overrides)  # RandomShuffle shards itself
    with resuming_in_place(resume):
        trainer.fit(module, loader, ckpt_path=resume)
    if model is not ctx.model:
        ctx.model = model.merge_and_unload()  # a plain model again, saved and unlearned like any other
    for p in frozen:
        p.requires_grad_(True)
    ctx.model.eval()
    probes = [c for c in callbacks if isinstance(c, MemorisationCheck)]
    if probes:
        ctx.artifacts["finetune_probe"] = probes[0].history


def shuffled_loader(data, batch_size: int, collate_fn, num_workers: int = 0,
                    generator: torch.Generator | None = None):
    """`DataLoader(data, shuffle=True)` as every teaching stage had it, and on W processes (under a trainer with
    `use_distributed_sampler=False`) the same global batches, portraits drawn as one process draws them
    (unlearn/data/sampling.py RandomShuffle, OneProcessDraws, UnlabelledRepeats)."""
    from torch.utils.data import DataLoader

    from unlearn.data.sampling import OneProcessDraws, RandomShuffle, UnlabelledRepeats

    return DataLoader(UnlabelledRepeats(OneProcessDraws(data)), batch_size=batch_size,
                      sampler=RandomShuffle(len(data), generator), collate_fn=collate_fn, num_workers=num_workers,
                      generator=generator)


def frozen_parameters(model: torch.nn.Module, patterns) -> list[torch.nn.Parameter]:
    """The parameters whose name matches one of the regexes; a regex that matches none is refused."""
    out = []
    for pattern in patterns:
        hits = [(n, p) for n, p in model.named_parameters() if re.search(pattern, n)]
        if not hits:
            raise ValueError(f"finetune.frozen pattern {pattern!r} matches no parameter")
        out += [p for _, p in hits]
    return out


def freeze(model: torch.nn.Module, patterns) -> list[torch.nn.Parameter]:
    """Hold parameters whose name matches a regex at their initial values while teaching."""
    out = frozen_parameters(model, patterns)
    for p in out:
        p.requires_grad_(False)
    return out


def check_before_evaluation(ctx, world: int) -> None:
    """`method=finetune`: what the model's structure alone refuses (finetune.frozen, finetune.lora's targets),
    checked before the before-evaluation (pipeline.check_method_before_evaluation); `teach` reaches it after it."""
    from unlearn.mmunlearner.lora import check_targets

    frozen_parameters(ctx.model, ctx.cfg.finetune.frozen)
    check_targets(ctx.model, ctx.cfg.finetune.get("lora"), ctx.cfg.model, "finetune.lora")


def run(ctx) -> None:
    """`method=finetune`: teach the benchmark; the result is this run's `model/`. Each epoch's end writes
    <run dir>/checkpoints/last.ckpt, from which `+finetune.ckpt_path=` resumes an interrupted teaching."""
    teach(ctx, ctx.cfg.finetune, checkpoints=ctx.out_dir / "checkpoints", resume=ctx.cfg.finetune.get("ckpt_path"))
