"""One evaluation for every method: a Lightning validation pass over all eval items, split across ranks.

Each rank scores its shard (Lightning's distributed sampler may repeat items to even the shards); the
per-item records are gathered on every rank and de-duplicated by uid before aggregation, so one and
several processes report the same numbers in float32. An item's batch mates (which change with the batch
size and the number of processes) move its padded forward pass by float rounding only: in float32 no greedy
reply changed against one item at a time, in bfloat16 some can (`python -m bench.batch_invariance`).
"""

from __future__ import annotations

import lightning as L
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from unlearn.eval.items import EvalItem
from unlearn.eval.metrics import aggregate
from unlearn.eval.protocol import EmbeddedPrompts
from unlearn.eval.reading import TASKS, check_mc_reading
from unlearn.eval.scorers import get_scorer
from unlearn.eval.scoring import (NonFiniteScoreError, check_mc_options, score_generation, score_mc,
                                  score_probabilities)
from unlearn.models.precision import own_precision
from unlearn.models.processor import VLProcessor


class EvaluationModule(L.LightningModule):
    def __init__(self, model: torch.nn.Module, processor: VLProcessor, items: list[EvalItem], stage: str,
                 batch_size: int = 32, mc_mode: str = "likelihood", max_new_tokens: int = 12,
                 scorer: str = "embedded", mc_also: str | None = None, prompts=None,
                 truth_ratio_perturbed: str = "item", share_prompt: bool = True,
                 shared_cache_gb: float | None = None, own_dtype: bool = False):
        """`prompts`: the evaluation protocol (unlearn/eval/protocol.py), which writes the generated items'
        prompts and limits; None: the embedded protocol with `max_new_tokens`. `share_prompt`: score the
        answers of an MC or truth-ratio item after one pass over their prompt (unlearn/eval/shared_prompt.py),
        in passes that hold about `shared_cache_gb` GB of copied prompt caches at most (None: no bound).
        `own_dtype` (`eval.dtype` set): the model scores in the dtype it holds, out of the trainer's autocast."""
        super().__init__()
        self.prompts = prompts or EmbeddedPrompts(max_new_tokens)
        # a protocol whose benchmark has no MC of its own (clear) leaves MC to the embedded protocol
        self.mc_prompts = getattr(self.prompts, "mc_prompts", self.prompts)
        check_mc_reading(self.prompts.name, self.mc_prompts.name != "embedded", mc_mode, mc_also)
        check_mc_options(items, mc_mode, mc_also, self.mc_prompts)
        self.mc_also = mc_also
        self.truth_ratio_perturbed = truth_ratio_perturbed
        self.share_prompt, self.shared_cache_gb = share_prompt, shared_cache_gb
        self.scorer = get_scorer(scorer)
        self.model, self.proc, self.stage, self.own_dtype = model, processor, stage, own_dtype
        self.batch_size, self.mc_mode, self.max_new_tokens = batch_size, mc_mode, max_new_tokens
        self.tasks = [t for t in TASKS if any(it.task == t for it in items)]
        self.items_by_task = {t: [it for it in items if it.task == t] for t in self.tasks}
        self._records: list[dict] = []
        self.metrics: dict[str, float] = {}
        self.records: list[dict] = []

    def val_dataloader(self):
        # a prob item is 2 + k sequences (truth, paraphrase, k perturbed answers): smaller batches
        return [DataLoader(self.items_by_task[t], collate_fn=list,
                           batch_size=max(1, self.batch_size // 4) if t == "prob" else self.batch_size)
                for t in self.tasks]

    def transfer_batch_to_device(self, batch, device, dataloader_idx: int):
        """Items stay where they are: the scorers collate them and move the tensors the model reads. Lightning's
        default would walk (and copy) every item's fields on every batch."""
        return batch

    def on_validation_epoch_start(self) -> None:
        self._records = []
        self.model.eval()

    def validation_step(self, items: list[EvalItem], batch_idx: int, dataloader_idx: int = 0):
        with own_precision(self.device, self.own_dtype):
            try:
                self._score(items, self.tasks[dataloader_idx])
            except NonFiniteScoreError as e:  # which model it was says where to look (until 2026-12-05 every
                # stage's message asked whether the method diverged, the before-evaluation's too)
                cause = "the model as loaded: are its weights finite?" if self.stage == "before" else \
                    "the method, or the attack, diverged?"
                raise NonFiniteScoreError(f"{self.stage} evaluation: {e} ({cause})") from e

    def _score(self, items: list[EvalItem], task: str) -> None:
        if task == "mc":
            self._records += score_mc(self.model, self.proc, items, self.mc_mode, self.max_new_tokens,
                                     self.scorer, self.mc_prompts, self.share_prompt, self.shared_cache_gb)
            if self.mc_also:  # the same items scored a second way, kept apart by uid and metric name
                for r in score_mc(self.model, self.proc, items, self.mc_also, self.max_new_tokens, self.scorer,
                                  share_prompt=self.share_prompt, cache_gb=self.shared_cache_gb):
                    self._records.append({**r, "uid": f"{r['uid']}#{self.mc_also}",
                                          "metric": f"mc_acc_{self.mc_also}"})
        elif task == "prob":
            self._records += score_probabilities(self.model, self.proc, items, self.share_prompt,
                                                   self.shared_cache_gb, getattr(self.prompts, "prob_labels", "answer"))
        else:
            self._records += score_generation(self.model, self.proc, items, self.max_new_tokens, self.scorer,
                                              self.prompts)

    def on_validation_epoch_end(self) -> None:
        records = self._records
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            gathered: list[list[dict]] = [None] * dist.get_world_size()  # type: ignore[list-item]
            dist.all_gather_object(gathered, records)
            records = [r for part in gathered for r in part]
        unique = {r["uid"]: r for r in records}
        self.records = [unique[k] for k in sorted(unique)]
        self.metrics = aggregate(self.records, self.stage, self.truth_ratio_perturbed)
