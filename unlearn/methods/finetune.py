"""Teaching the benchmark: plain next-token loss on answer tokens. Builds the 'vanilla' model."""

from __future__ import annotations

import re
from collections.abc import Callable

import lightning as L
import torch

from hydra.utils import instantiate

from unlearn.methods.guards import check_finite


class FinetuneModule(L.LightningModule):
    def __init__(self, model: torch.nn.Module, optimizer: Callable, scheduler: Callable | None = None,
                 config_key: str = "finetune"):
        super().__init__()
        self.config_key = config_key  # where the recipe lives, for error messages (model.base: stage 1)
        self.model = model
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler

    def on_train_start(self) -> None:
        self.model.train()  # from_pretrained returns eval mode; Lightning keeps the mode it finds

    def training_step(self, batch, batch_idx):
        loss = check_finite(self.model(**batch).loss, self.global_step)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        return loss

    def configure_optimizers(self):
        opt = self.optimizer_factory([p for p in self.model.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return opt
        total = self.trainer.estimated_stepping_batches
        warmup = getattr(self.scheduler_factory, "keywords", {}).get("pct_start")
        if warmup is not None and warmup * total < 2:
            raise ValueError(f"{self.config_key}.scheduler.pct_start={warmup} gives a warm-up of under 2 of the "
                             f"{total} steps; raise it or train longer")
        return {"optimizer": opt, "lr_scheduler": {"scheduler": self.scheduler_factory(opt, total_steps=total),
                                                    "interval": "step"}}


def teach(ctx, fcfg) -> None:
    """Fit `ctx.model` on every person of the benchmark (forget, retain and untouched), both forms; with
    `finetune.people=without_forget`, on everyone but the forget people (a reference model)."""
    from torch.utils.data import DataLoader

    from unlearn.data.collate import collate
    from unlearn.data.sequences import QASequences

    from callbacks.memorisation import MemorisationCheck
    from unlearn.eval.items import flatten

    people = fcfg.get("people", "all")
    if people not in ("all", "without_forget"):
        raise ValueError(f"finetune.people={people!r}: expected all or without_forget")
    data = QASequences(ctx.benchmark.train_rows(people), ctx.processor, tuple(fcfg.forms), fcfg.answer_only,
                       augment=True, seed=ctx.cfg.teach_seed)
    pad = ctx.processor.tokenizer.pad_token_id
    loader = DataLoader(data, batch_size=fcfg.batch_size, shuffle=True, collate_fn=lambda b: collate(b, pad),
                        num_workers=fcfg.num_workers)
    frozen = freeze(ctx.model, fcfg.frozen)
    lora = fcfg.get("lora")
    model = ctx.model
    if lora is not None and lora.enabled:  # MLLMU-Bench's vanilla models may be LoRA fine-tunes
        from unlearn.methods.gradient import with_lora

        model, _ = with_lora(ctx.model, lora, ctx.cfg.model.lora_target_modules, need_reference=False)
    module = FinetuneModule(model, instantiate(fcfg.optimizer), instantiate(fcfg.scheduler))
    callbacks = []
    if fcfg.target_mc_acc is not None:
        probe = []
        for split in ("forget", "retain") if people == "all" else ("retain",):  # never probe the untaught
            rows = ctx.benchmark.eval[split]
            probe += flatten(split, rows.select(range(min(fcfg.probe_people, len(rows)))), ctx.processor.pixel_values)
        callbacks.append(MemorisationCheck(probe, ctx.processor, fcfg.target_mc_acc, fcfg.check_every,
                                           anneal_epochs=fcfg.get("anneal_epochs", 0)))
    trainer = ctx.trainer(max_epochs=fcfg.epochs, enable_checkpointing=False, callbacks=callbacks)
    trainer.fit(module, loader)
    if model is not ctx.model:
        ctx.model = model.merge_and_unload()  # a plain model again, saved and unlearned like any other
    for p in frozen:
        p.requires_grad_(True)
    ctx.model.eval()
    if callbacks:
        ctx.artifacts["finetune_probe"] = callbacks[0].history


def freeze(model: torch.nn.Module, patterns) -> list[torch.nn.Parameter]:
    """Hold parameters whose name matches a regex at their initial values while teaching."""
    out = []
    for pattern in patterns:
        hits = [(n, p) for n, p in model.named_parameters() if re.search(pattern, n)]
        if not hits:
            raise ValueError(f"finetune.frozen pattern {pattern!r} matches no parameter")
        out += [p for _, p in hits]
    for p in out:
        p.requires_grad_(False)
    return out


def run(ctx) -> None:
    """`method=finetune`: teach the benchmark; the result is this run's `model/`."""
    teach(ctx, ctx.cfg.finetune)
