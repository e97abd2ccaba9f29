"""Gradient baselines (GA, gradient difference, KL minimisation, NPO) as one Lightning training step.

Each step pairs a forget batch with a retain batch; the loss math lives in `unlearn.losses`, this module
only runs the models. The reference model (KL, NPO) is a frozen copy of the starting model, held once.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import ConcatDataset, DataLoader

from unlearn import losses
from unlearn.data.collate import collate
from unlearn.data.sampling import EpochShuffle
from unlearn.data.sequences import QASequences
from unlearn.eval.scoring import model_inputs
from unlearn.methods.guards import check_finite

LOSSES = ("ga", "grad_diff", "kl", "npo")
NEEDS_REFERENCE = {"kl", "npo"}
FORGET_FORMS = {"multimodal": ("multimodal",), "text": ("text",), "both": ("multimodal", "text")}


class GradientUnlearning(L.LightningModule):
    def __init__(self, model: torch.nn.Module, loss: str, optimizer: Callable, gamma: float = 1.0,
                 alpha: float = 1.0, beta: float = 0.1, reference: torch.nn.Module | None = None,
                 scheduler: Callable | None = None, kl_reduction: str = "answer_mean",
                 npo_log_ratio: str = "sequence_sum"):
        """`reference`: the frozen starting model for KL / NPO; a copy of `model` when not given."""
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"method.loss={loss!r}: expected one of {LOSSES}")
        if kl_reduction not in losses.KL_REDUCTIONS:
            raise ValueError(f"method.kl_reduction={kl_reduction!r}: expected one of {losses.KL_REDUCTIONS}")
        if npo_log_ratio not in losses.NPO_LOG_RATIOS:
            raise ValueError(f"method.npo_log_ratio={npo_log_ratio!r}: expected one of {losses.NPO_LOG_RATIOS}")
        self.kl_reduction, self.npo_log_ratio = kl_reduction, npo_log_ratio
        self.model, self.loss_name, self.optimizer_factory = model, loss, optimizer
        self.gamma, self.alpha, self.beta = gamma, alpha, beta
        self.scheduler_factory = scheduler
        self.reference = None
        if loss in NEEDS_REFERENCE:
            ref = reference if reference is not None else copy.deepcopy(model)
            self.reference = ref.eval().requires_grad_(False)

    def on_train_start(self) -> None:
        self.model.train()  # from_pretrained returns eval mode; Lightning keeps the mode it finds

    def _logits(self, model, batch):
        return model(**model_inputs(batch, self.device)).logits

    def _ref_logits(self, batch):
        with torch.no_grad():
            self.reference.eval()  # Lightning's module.train() at fit start reaches the reference too
            return self._logits(self.reference, batch)

    def training_step(self, batch, batch_idx):
        f, r = batch["forget"], batch["retain"]
        fl, mean = self._logits(self.model, f), global_batch_mean(self.trainer)
        if self.loss_name == "ga":
            loss = losses.ga_loss(fl, f["labels"], mean)
        elif self.loss_name == "grad_diff":
            loss = losses.grad_diff_loss(fl, f["labels"], self._logits(self.model, r), r["labels"],
                                         self.gamma, self.alpha, mean)
        elif self.loss_name == "kl":
            loss = losses.kl_loss(fl, f["labels"], self._logits(self.model, r), self._ref_logits(r), r["labels"],
                                  self.alpha, mean, self.kl_reduction)
        else:
            retain = (self._logits(self.model, r), r["labels"]) if self.alpha > 0 else (None, None)
            loss = losses.npo_loss(fl, self._ref_logits(f), f["labels"], self.beta, *retain, alpha=self.alpha,
                                   mean=mean, log_ratio=self.npo_log_ratio)
        check_finite(loss, self.global_step)
        # each process holds W * (its share); their mean is the loss of the whole global batch
        self.log("unlearn/loss", loss, prog_bar=True, batch_size=f["input_ids"].shape[0], sync_dist=True)
        return loss

    def configure_optimizers(self):
        opt = self.optimizer_factory([p for p in self.model.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": self.scheduler_factory(opt), "interval": "step"}}


def global_batch_mean(trainer) -> losses.Mean:
    """Means over the global batch: item counts summed across processes (1 process: the batch's own)."""
    def mean(total: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        n = trainer.strategy.reduce(count.detach().clone(), reduce_op="sum")
        return losses.global_mean(total, n, trainer.world_size)
    return mean


def paired_loader(ctx, forget_modality: str, batch_size: int, answer_only: bool = True,
                  seed: int = 0) -> CombinedLoader:
    """Forget and retain batches side by side; an epoch is one pass over the forget data."""
    if forget_modality not in FORGET_FORMS:
        raise ValueError(f"data.forget_modality={forget_modality!r}: expected one of {list(FORGET_FORMS)}")
    proc, pad = ctx.processor, ctx.processor.tokenizer.pad_token_id
    forms = FORGET_FORMS[forget_modality]
    forget = ConcatDataset([QASequences(ctx.benchmark.train_rows("forget"), proc, f, answer_only) for f in forms])
    retain = ConcatDataset([QASequences(ctx.benchmark.train_rows("retain"), proc, f, answer_only) for f in forms])
    make = lambda ds, s: DataLoader(ds, batch_size=batch_size, sampler=EpochShuffle(len(ds), s),  # noqa: E731
                                    collate_fn=lambda b: collate(b, pad))
    return CombinedLoader({"forget": make(forget, seed), "retain": make(retain, seed + 1)}, mode="min_size")


def run(ctx) -> None:
    from hydra.utils import instantiate

    m = ctx.cfg.method
    model, reference = ctx.model, None
    if m.lora.enabled:
        model, reference = with_lora(ctx.model, m.lora, ctx.cfg.model.lora_target_modules, m.loss in NEEDS_REFERENCE)
    if m.reference_path:  # e.g. MLLMU-Bench's NPO reference: the vanilla model finetuned on retain data
        from unlearn.models.loading import load_model

        reference, _ = load_model(m.reference_path, ctx.cfg.model.dtype, key="method.reference_path",
                                  template=ctx.cfg.model.get("template"))
    module = GradientUnlearning(model, m.loss, instantiate(m.optimizer), m.gamma, m.alpha, m.beta, reference,
                                instantiate(m.scheduler) if m.scheduler else None, m.kl_reduction, m.npo_log_ratio)
    loader = paired_loader(ctx, ctx.cfg.data.forget_modality, m.batch_size, m.answer_only, ctx.cfg.seed)
    checkpoints = ModelCheckpoint(dirpath=ctx.out_dir / "checkpoints", save_last=True, save_top_k=0,
                                  every_n_epochs=1)
    trainer = ctx.trainer(max_epochs=m.epochs, callbacks=[checkpoints], enable_checkpointing=True,
                          use_distributed_sampler=False)  # EpochShuffle shards itself
    trainer.fit(module, loader, ckpt_path=m.ckpt_path)
    if m.lora.enabled:
        ctx.model = model.merge_and_unload()  # a plain model again: evaluated and saved like any other
    ctx.model.eval()


def with_lora(model, lora_cfg, target_modules, need_reference: bool):
    """Wrap `model` with LoRA adapters (peft); the reference is copied first, so it has no adapters.
    `target_modules`: module-name suffixes, or one regex string (peft full-matches it against module names)."""
    from peft import LoraConfig, get_peft_model

    reference = copy.deepcopy(model) if need_reference else None
    config = LoraConfig(r=lora_cfg.r, lora_alpha=lora_cfg.alpha, lora_dropout=lora_cfg.dropout,
                        target_modules=target_modules if isinstance(target_modules, str) else list(target_modules))
    return get_peft_model(model, config), reference
