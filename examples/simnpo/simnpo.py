"""SimNPO (Fan et al. 2024, "Simplicity Prevails: Rethinking Negative Preference Optimization for LLM
Unlearning") as a method from outside the package: the worked example of docs/guide/adding_a_method.md.

Why it is here: it shows the whole contract a method of your own meets (a `run(ctx)` that changes `ctx.model`
in place; the pipeline evaluates it before and after, seeds it, caches the vanilla model, writes the run's
files), built from the package's public pieces: the forget/retain batches (`paired_loader`), the loss math
(`unlearn.losses`), the Trainer of the chosen trainer preset (`ctx.trainer`), the non-finite loss refusal.
The loss is open-unlearning's (src/trainer/unlearn/simnpo.py: the forget rows' summed NLL over their label
count, minus delta; -(2/beta) logsigmoid(beta * that), the mean over rows; plus alpha times the retain NLL),
held against a port of it in tests/test_adding_a_method.py; its defaults are that repository's
configs/trainer/SimNPO.yaml (beta 4.5, delta 0, gamma 0.125, alpha 1).

Run (from the repository root):
    PYTHONPATH=examples/simnpo python train.py method=simnpo 'hydra.searchpath=[file://examples/simnpo/configs]'
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from unlearn import losses
from unlearn.eval.scoring import model_inputs
from unlearn.methods.gradient import paired_loader, process_batch_mean
from unlearn.methods.guards import check_finite


def simnpo_forget_loss(logits: torch.Tensor, labels: torch.Tensor, beta: float, delta: float = 0.0,
                       shard: bool = False) -> torch.Tensor:
    """Mean over rows of -(2/beta) * logsigmoid(beta * (NLL(row) / label tokens(row) - delta)).

    NPO's log ratio against a reference model, replaced by the row's length-normalised NLL: no reference is held,
    and long answers are not pushed harder than short ones. The length is open-unlearning's: every labelled
    position, the first one included (which no position predicts: it counts under label_prefix with every token
    labelled). Rows without label tokens (a data-parallel shard's padding repeats) are left out of the mean;
    `shard`: this is one of several processes' batches, which may hold padding repeats alone, and adds nothing
    then (until 2026-12-06 such a batch stopped the run: one process of two at batch size 1)."""
    if beta <= 0:
        raise ValueError(f"simnpo.beta must be > 0, got {beta}")
    logp, mask = losses.token_logprobs(logits, labels)
    rows = mask.any(-1)
    if not rows.any():
        if shard:
            return logits.sum() * 0.0  # in the graph, so that DDP's gradient reduction still meets every rank
        raise ValueError("simnpo: the forget batch has no label tokens")
    per_token_nll = -logp.sum(-1)[rows] / (labels != losses.IGNORE).sum(-1)[rows]
    return (-(2.0 / beta) * F.logsigmoid(beta * (per_token_nll - delta))).mean()


class SimNPO(L.LightningModule):
    """gamma * SimNPO(forget) + alpha * NLL(retain), one joint step per forget batch and retain batch."""

    def __init__(self, model: torch.nn.Module, optimizer, beta: float, delta: float, gamma: float, alpha: float):
        super().__init__()
        self.model, self.optimizer_factory = model, optimizer
        self.beta, self.delta, self.gamma, self.alpha = beta, delta, gamma, alpha

    def on_fit_start(self) -> None:
        self.model.train()  # from_pretrained leaves a model in eval mode (dropout off)

    def _logits(self, batch: dict) -> torch.Tensor:
        return self.model(**model_inputs(batch, self.device), use_cache=False).logits

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        forget, retain = batch["forget"], batch["retain"]
        shard = self.trainer.world_size > 1
        loss = self.gamma * simnpo_forget_loss(self._logits(forget), forget["labels"], self.beta, self.delta, shard)
        if self.alpha:  # this process's own mean, as a per-device loss is (a padding-only batch adds nothing)
            loss = loss + self.alpha * losses.mean_nll(self._logits(retain), retain["labels"],
                                                       mean=process_batch_mean(self.trainer))
        check_finite(loss, self.global_step, "the method=simnpo loss")  # stop before a NaN reaches the weights
        self.log("unlearn/loss", loss, prog_bar=True, batch_size=forget["input_ids"].shape[0], sync_dist=True)
        return loss

    def configure_optimizers(self):
        return self.optimizer_factory([p for p in self.model.parameters() if p.requires_grad])


def run(ctx) -> None:
    """The method: change `ctx.model` in place. Its settings are the top-level `simnpo` section of its config."""
    s = ctx.cfg.simnpo
    loader = paired_loader(ctx, ctx.cfg.data.forget_modality, s.batch_size, seed=ctx.cfg.seed)
    module = SimNPO(ctx.model, instantiate(s.optimizer), s.beta, s.delta, s.gamma, s.alpha)
    # the loader shards its own epochs across processes (as the built-in gradient methods do)
    ctx.trainer(max_epochs=s.epochs, use_distributed_sampler=False).fit(module, loader)
    ctx.model.eval()
