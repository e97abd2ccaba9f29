"""MMUnlearner (arXiv 2502.11051): erase an entity's visual patterns, keep its textual knowledge.

Stage 1, saliency: diagonal Fisher of the forget data (multimodal QA) against preserve data, per group:
vision tower + projector preserve retain multimodal QA; the language model preserves retain multimodal QA
plus text-only QA about every person, forget people included (that is how textual knowledge is kept).
A weight is unlearned where F_f / F_p >= gamma (0/0 counts as 0: no data, no unlearning); with
`mask_fraction`, gamma is the largest that selects that fraction of the unlearned groups.

Stage 2, update: each training step is one forget step (gradient ascent, clip 1.0, gradient times mask)
followed by `retain_steps` plain descent steps on retain data (null: about one pass over retain per epoch;
`official`: the authors' schedule, every forget and retain batch once per epoch). `apply_mask=false` skips
stage 1 and ascends unmasked: what the authors' LLaVA script does in effect, since its name-keyed mask matches
no parameter of its peft LoRA model. With two optimisers (default) the forget optimiser only holds the
unlearned groups and has no weight decay, and a masked-out element's gradient is always 0 in forget steps, so
its Adam moments stay 0 and it never moves there; retain-step momentum lives in the other optimiser. With one
optimiser, masked-out elements are restored after each forget step (`restore_masked`; the authors' single
AdamW does not restore them).

Every choice of the authors' code (Z1zs/MMUnlearner) is a setting: see configs/method/mmunlearner.yaml and
the preset configs/experiment/mmunlearner_official.yaml.

Under DDP, `mmunlearner.batch_size` is per process: W processes with batch B/W take the same update steps
as one process with batch B (same batches, token means over the global batch, same retain/forget ratio).
The Fisher pass uses its own `fisher_batch_size`, fixed whatever the world size, so the mask matches too.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable

import lightning as L
import torch
from safetensors.torch import load_file
from torch.utils.data import ConcatDataset, DataLoader

from unlearn import losses
from unlearn.data.collate import collate, qa_example
from unlearn.data.sampling import EpochShuffle, UnlabelledRepeats, rank_share
from unlearn.data.sequences import with_prefix_labels
from unlearn.data.writings import check_sequences, check_writing, label_flags
from unlearn.data.written import qa_sequences, written_example
from unlearn.models.loading import recipe_processor
from unlearn.rank_sum import sum_over_ranks
from unlearn.models.precision import dtype_named, round_parameters
from unlearn.models.vocab import resize_embeddings
from unlearn.eval.scoring import model_inputs
from unlearn.io import write_json, write_masks
from unlearn.methods.gradient import batch_mean_named
from unlearn.methods.guards import check_finite, refuse_non_finite_gradients
from unlearn.mmunlearner.lora import adapted_modules, check_targets, lora_targets, peft_targets
from unlearn.optim import make_optimizer
from unlearn.mmunlearner.saliency import (HALF_DTYPES, eligible_parameters, half_fisher_add, gamma_for_fraction,
                                          group_parameters, mask_report, official_half_mask, restore_masked_out,
                                          saliency_mask, squared_grads)
from unlearn.mmunlearner.schedule import (ScheduledBatches, Tagged, collate_scheduled, even_retain_steps,
                                          even_schedule, official_schedule)
from unlearn.fsdp_refusals import refuse_fsdp
# imported from here too; they live apart so that the checks before a run need no Lightning (unlearn/before_run.py)
from unlearn.mmunlearner.choices import (CLIP_SCOPES, GROUPS, LORA_INITS_WITH_ZERO_FACTOR,
                                         OPTIMIZERS, PRESERVE_BATCHES, PRESERVE_TEXT)

log = logging.getLogger(__name__)
FISHER_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def choice(value, allowed, key: str):
    if value not in allowed:
        raise ValueError(f"{key}={value!r}: expected one of {list(allowed)}")
    return value


def fisher_batches(n_rows: int, batch_size: int, shuffle_seed: int | None, j: int) -> list[list[int]]:
    """The Fisher pass's batches of its j-th loader, fixed before sharding: in order, or (`shuffle_seed`) from a
    seeded permutation, the same on every rank."""
    order = list(range(n_rows))
    if shuffle_seed is not None:
        order = torch.randperm(n_rows, generator=torch.Generator().manual_seed(shuffle_seed + j)).tolist()
    return [order[i:i + batch_size] for i in range(0, n_rows, batch_size)]


def fisher_pass_name(key: str) -> str:
    return f"the Fisher pass ({key})"


class FisherPass(L.LightningModule):
    """Mean squared gradients per parameter and dataset, with gradients on in a validation loop.

    Batches are fixed before sharding (rank r takes batches r, r + W, ...), and squared gradients are
    summed across ranks before dividing by the total batch count: 1 and W processes agree.

    `dtype=float16` (or bfloat16) is the authors' accumulation (SFRon.py): per batch grad ** 2 / n_batches in
    that dtype, summed in it; in float16 squares below its smallest subnormal (|grad| < ~1.7e-4) and small
    quotients are 0. On one process it is their accumulation exactly (given the gradients: theirs come from a
    float16 forward and backward, ours from float32 on the rounded weights, start_precision); under DDP the
    ranks' half partial sums are added in another order (rounding may differ in the last bit).
    """

    def __init__(self, model, datasets: dict, params: dict[str, list], batch_size: int, pad_id: int,
                 shuffle_seed: int | None = None, dtype: torch.dtype = torch.float32):
        """`shuffle_seed`: batches drawn from a seeded permutation (the authors shuffle); None: in order."""
        super().__init__()
        # each parameter once per pass: overlapping groups (model.param_groups.language: model also matches the
        # vision tower) would otherwise keep a second accumulator for the same tensor
        self.model, self.datasets = model, datasets
        self.params = {k: list(dict.fromkeys(v)) for k, v in params.items()}
        self.loader_keys = list(datasets)
        self.batch_size, self.pad_id, self.shuffle_seed, self.acc_dtype = batch_size, pad_id, shuffle_seed, dtype
        self.sums: dict[str, list[torch.Tensor]] = {}
        self.batches: dict[str, int] = {}
        self.total: dict[str, int] = {}  # each loader's batch count over all ranks
        self.fisher: dict[str, dict[torch.nn.Parameter, torch.Tensor]] = {}

    def val_dataloader(self):
        loaders = []
        for j, ds in enumerate(self.datasets.values()):
            batches = fisher_batches(len(ds), self.batch_size, self.shuffle_seed, j)
            self.total[self.loader_keys[j]] = len(batches)
            mine = rank_share(batches, self.trainer.global_rank, self.trainer.world_size,
                              fisher_pass_name(self.loader_keys[j]), "mmunlearner.fisher_batch_size")
            loaders.append(DataLoader(ds, batch_sampler=mine, collate_fn=lambda b: collate(b, self.pad_id)))
        return loaders

    def on_validation_epoch_start(self) -> None:
        self.model.eval()
        self.sums = {k: [torch.zeros(p.shape, dtype=self.acc_dtype, device=p.device) for p in self.params[k]]
                     for k in self.loader_keys}
        self.batches = {k: 0 for k in self.loader_keys}

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        key = self.loader_keys[dataloader_idx]
        with torch.enable_grad():
            loss = check_finite(self.model(**model_inputs(batch, self.device), labels=batch["labels"].to(
                self.device), use_cache=False).loss, batch_idx, f"Fisher loss on {key}")
            if self.acc_dtype in HALF_DTYPES:  # theirs: acc += grad ** 2 / len(loader), all in that dtype
                grads = torch.autograd.grad(loss, self.params[key], allow_unused=True)
                for acc, g in zip(self.sums[key], grads):
                    if g is not None:
                        acc.copy_(half_fisher_add(acc, g, self.total[key], self.acc_dtype))
            else:
                for acc, sq in zip(self.sums[key], squared_grads(loss, self.params[key])):
                    acc.add_(sq)
        self.batches[key] += 1

    def on_validation_epoch_end(self) -> None:
        for key in self.loader_keys:
            if self.trainer.world_size > 1:  # one all-reduce of every sum and the batch count
                *sums, n = sum_over_ranks(self.trainer, [s.float() for s in self.sums[key]] +
                                          [torch.tensor([float(self.batches[key])], device=self.device)])
                n = n.item()
            else:  # one process: no float32 copy of every sum beside them (at 7B shape in half precision, tens of GB)
                n, sums = float(self.batches[key]), self.sums[key]
            # half-precision sums are already divided by the batch count
            self.fisher[key] = {p: (s.to(self.acc_dtype) if self.acc_dtype in HALF_DTYPES else s.float() / max(n, 1.0))
                                .cpu() for p, s in zip(self.params[key], sums)}
            self.batches[key] = int(n)


class MaskedUnlearning(L.LightningModule):
    """Batches are {"forget": batch, "retain": [batch per retain step]}. Manual optimisation; gradients are
    clipped and masked in `on_before_optimizer_step`, i.e. after DDP has averaged them (during
    `manual_backward`) and AMP has unscaled them, so every rank steps identically."""

    def __init__(self, model, masks: dict | None, forget_optimizer: Callable, retain_optimizer: Callable,
                 clip: float = 1.0, optimizers: str = "two", restore_masked: bool = True,
                 clip_scope: str = "unlearned", clip_retain: bool = True, token_mean: str = "global"):
        """`restore_masked` (optimizers=one): put masked-out elements back after each forget step; false is the
        authors' shared AdamW, whose retain-step momentum moves them in forget steps too.
        `masks=None` (mmunlearner.apply_mask=false): forget steps ascend on every trainable parameter, unmasked.
        `clip_scope`: the forget step's gradient norm is clipped over the unlearned (masked) parameters, or over
        all parameters with a gradient before the mask is applied (`all`, the authors'). `clip_retain`: retain
        steps are clipped to `clip` too (MLLMU_manifold.py clips both; CLEAR_manifold.py only forget steps)."""
        super().__init__()
        choice(optimizers, OPTIMIZERS, "mmunlearner.optimizers")
        self.clip_scope = choice(clip_scope, CLIP_SCOPES, "mmunlearner.clip_scope")
        self.model, self.masks = model, masks
        self.forget_optimizer, self.retain_optimizer = forget_optimizer, retain_optimizer
        self.clip, self.mode, self.restore_masked = clip, optimizers, restore_masked
        if not isinstance(clip_retain, bool):
            raise ValueError(f"mmunlearner.clip_retain={clip_retain!r}: expected true or false")
        self.clip_retain = clip_retain
        # mmunlearner.token_mean: the NLLs' token mean over the global batch, or each process's own (the authors')
        self.batch_mean = batch_mean_named(token_mean, "mmunlearner.token_mean")
        self.retain_steps_taken: list[int] = []  # per training step
        self.automatic_optimization = False
        self._phase = "retain"

    def on_fit_start(self) -> None:
        self.model.train()  # before Lightning looks for modules left in eval mode (from_pretrained's)
        self.retain_steps_taken = []  # this fit's, as callbacks/trained_batches.py counts its batches

    def trained_parts(self) -> dict[str, int]:
        """A training step is one forget batch and the retain batches after it (callbacks/trained_batches.py):
        each kind's count, this process's, in this fit."""
        return {"forget": len(self.retain_steps_taken), "retain": sum(self.retain_steps_taken)}

    def _trainable(self) -> list:
        return [p for p in self.model.parameters() if p.requires_grad]

    def _unlearned(self) -> list:
        return self._trainable() if self.masks is None else list(self.masks)

    def configure_optimizers(self):
        trainable = self._trainable()
        if self.mode == "one":
            shared = make_optimizer(self.retain_optimizer, trainable, "mmunlearner.retain_optimizer")
            if self.masks is not None:  # no mask: nothing that decay could move against it
                refuse_weight_decay(shared, "mmunlearner.retain_optimizer.weight_decay")  # it takes forget steps too
            return shared
        forget = make_optimizer(self.forget_optimizer, self._unlearned(), "mmunlearner.forget_optimizer")
        if self.masks is not None:
            refuse_weight_decay(forget, "mmunlearner.forget_optimizer.weight_decay")
        return [forget, make_optimizer(self.retain_optimizer, trainable, "mmunlearner.retain_optimizer")]

    def _restores(self) -> bool:
        """One shared optimiser whose forget steps are undone outside the mask (`restore_masked`)."""
        return self.mode == "one" and self.restore_masked and self.masks is not None

    def _nll(self, batch, what: str):
        logits = self.model(**model_inputs(batch, self.device), use_cache=False).logits
        nll = losses.mean_nll(logits, batch["labels"].to(self.device), self.batch_mean(self.trainer))
        return check_finite(nll, self.global_step, f"{what} loss")

    def on_before_optimizer_step(self, optimizer) -> None:
        if self._phase == "forget":  # ascend, clip, mask
            scope = self._unlearned() if self.clip_scope == "unlearned" else self._trainable()
            torch.nn.utils.clip_grad_norm_([p for p in scope if p.grad is not None], self.clip)
            for p, m in (self.masks or {}).items():
                if p.grad is not None:
                    p.grad.mul_(m.to(p.grad.device, p.grad.dtype))
            if self._restores():  # the shared optimiser must not take the ascent into the moments of tensors
                for p in self._trainable():  # outside the mask, which the restore puts back but their moments
                    if p not in self.masks:  # would carry into the next retain step (a skipped tensor keeps
                        p.grad = None  # its state)
        elif self.clip_retain:
            torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]
                                            if p.grad is not None], self.clip)
        # after the mask: a gradient it zeroes is still NaN there (NaN * 0), and moves its weight
        refuse_non_finite_gradients(self, f"the mmunlearner {self._phase} step")

    def training_step(self, batch, batch_idx):
        opts = self.optimizers()
        opt_f, opt_r = (opts, opts) if self.mode == "one" else opts
        trainable = self._trainable()
        # forget step: gradient ascent, clipped and masked before the step
        # the tensors outside the mask take no forget step at all (on_before_optimizer_step drops their gradients),
        # so only the masked ones are kept to be put back
        snapshot = {p: p.detach().clone() for p in self.masks} if self._restores() else None
        for p in trainable:  # every gradient, not only the forget optimiser's: clip_scope=all reads them all
            p.grad = None
        forget_nll = self._nll(batch["forget"], "forget")
        self.manual_backward(-forget_nll)
        self._phase = "forget"
        opt_f.step()
        self._phase = "retain"
        if snapshot is not None:
            restore_masked_out(snapshot, self.masks, snapshot)
        # retain steps: plain descent on everything, one collated chunk each
        for chunk in batch["retain"]:
            opt_r.zero_grad(set_to_none=True)
            retain_nll = self._nll(chunk, "retain")
            self.manual_backward(retain_nll)
            opt_r.step()
        self.retain_steps_taken.append(len(batch["retain"]))
        # each process holds W * (its share): the mean over processes is the global batch's NLL
        logged = {"unlearn/forget_nll": forget_nll.detach()}
        if batch["retain"]:  # the last forget steps may have none (even schedule, k * n_forget > n_retain)
            logged["unlearn/retain_nll"] = retain_nll.detach()
        self.log_dict(logged, prog_bar=True, batch_size=batch["forget"]["input_ids"].shape[0], sync_dist=True)


def refuse_weight_decay(optimizer, key: str) -> None:
    """Decoupled weight decay shrinks every element an optimiser holds, masked out or not (a gradient mask
    cannot stop it), so the optimiser that takes forget steps must have none (torch's AdamW defaults to 0.01)."""
    decay = max(g.get("weight_decay", 0.0) for g in optimizer.param_groups)
    if decay > 0:
        raise ValueError(f"{key}={decay}: must be 0, weight decay would move weights the saliency mask "
                         "leaves out of forget steps")


SEQUENCES_LABELS = "mmunlearner.fisher_labels=all mmunlearner.update_labels=all"


def qa_data(rows, proc, form, labels: str = "answer", sequences: str = "template",
            labels_key: str = "mmunlearner.update_labels"):
    """QA sequences in `form` with the label span `labels` (writings.LABEL_SPANS; `labels_key` names its setting), from
    the model's template or a codebase's written strings (mmunlearner.sequences, unlearn/data/written.py)."""
    return qa_sequences(rows, proc, form, sequences, *label_flags(labels, labels_key), key="mmunlearner.sequences",
                        labels_key=SEQUENCES_LABELS)


class TextQuestions(torch.utils.data.Dataset):
    """Text-only (question, answer) pairs as training examples (no image)."""

    def __init__(self, pairs: list[tuple[str, str]], processor, labels: str = "answer", sequences: str = "template",
                 labels_key: str = "mmunlearner.fisher_labels"):
        self.pairs, self.proc = pairs, processor
        self.answer_labels, self.prefix = label_flags(labels, labels_key)
        self.written = check_sequences(sequences, self.answer_labels, self.prefix, "mmunlearner.sequences",
                                       SEQUENCES_LABELS)
        check_writing(sequences, processor.family, ("text",), "mmunlearner.sequences")
        self.sequences = sequences

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int):
        if self.written:
            return written_example(self.proc, *self.pairs[i], None, self.sequences, self.proc.family,
                                   key="mmunlearner.sequences", answer_only=self.answer_labels)
        ex = qa_example(self.proc, [self.pairs[i]], None, self.answer_labels)
        return with_prefix_labels(ex, self.proc) if self.prefix else ex


def eval_mc_text_pairs(benchmark) -> list[tuple[str, str]]:
    """The forget and retain people's text-only MC questions of the evaluation set, each answered with its
    correct option (the authors' text preserve set, as issue 12's port of MLLMU_gen_mask.py reads it).

    Under data.on_bad_row=score, as theirs reads its rows (data_process/MLLMU_process.py `MLLMU_text_Dataset`:
    `options[correct_answer]`, the other options unread): a question with an empty or null wrong option is kept
    (skip drops it), and so is one whose Correct_Answer is a key of the file's own other than A-D (a fifth key E).
    Where theirs stops (a KeyError: a null Correct_Answer, or one that is no key) the question is left out, as skip
    leaves it; so is one with no question or no answer text, which theirs teaches as "None" or "" (json2token's
    `str`), no knowledge to preserve."""
    pairs = []
    for split in ("forget", "retain"):
        for row in benchmark.eval[split]:
            for q in row["Classification_Task"]["Pure_Text_Questions"]:
                # matched whole, against the Options' own keys (a null one, which data.on_bad_row=score keeps, raised
                # a TypeError on `in "ABCD"`; A-D alone left out a file's key E until the forty-seventh session)
                answer = q["Options"].get(q["Correct_Answer"]) if isinstance(q["Correct_Answer"], str) else None
                if q["Question"] and (answer or "").strip():
                    pairs.append((q["Question"], answer))
    return pairs


def fisher_datasets(ctx, labels: str = "answer", preserve_text: str = "train_qa",
                    sequences: str = "template") -> dict:
    """Forget and retain multimodal QA; the language preserve set adds text-only questions about every person:
    the training QA (`train_qa`) or the evaluation set's text-only MC questions (`eval_mc`, the authors').
    `labels`: the label span (mmunlearner.fisher_labels)."""
    if preserve_text not in PRESERVE_TEXT:
        raise ValueError(f"mmunlearner.preserve_text={preserve_text!r}: expected one of {PRESERVE_TEXT}")
    proc, b = recipe_processor(ctx, "mmunlearner"), ctx.benchmark
    key = "mmunlearner.fisher_labels"
    retain_mm = qa_data(b.train_rows("retain"), proc, "multimodal", labels, sequences, key)
    if preserve_text == "eval_mc":
        text_all = TextQuestions(eval_mc_text_pairs(b), proc, labels, sequences, key)
    else:
        text_all = ConcatDataset([qa_data(b.train_rows(g), proc, "text", labels, sequences, key)
                                  for g in ("forget", "retain")])
    forget = qa_data(b.train_rows("forget"), proc, "multimodal", labels, sequences, key)
    return {"forget": forget, "retain_multimodal": retain_mm, "text_all": text_all}


def fisher_loaders(ctx, labels: str = "answer", preserve_text: str = "train_qa", sequences: str = "template",
                   preserve_batches: str = "separate") -> dict:
    """The Fisher pass's datasets, one loader each (`preserve_batches`: see compute_masks)."""
    data = fisher_datasets(ctx, labels, preserve_text, sequences)
    if preserve_batches == "mixed":
        data = {"forget": data["forget"], "retain_multimodal": data["retain_multimodal"],
                "language_preserve": ConcatDataset([data["text_all"], data["retain_multimodal"]])}  # their order
    return data


def check_before_evaluation(ctx, world: int) -> None:
    """The refusals the data sizes, the process count and the model's structure decide, checked before the
    before-evaluation (pipeline.check_method_before_evaluation; `run` reaches them after it, hours at 7B): the
    parameter groups' patterns (group_parameters, eligible_parameters; under mmunlearner.lora.enabled they read the
    adapters, made in `run`), the Fisher pass's rank_share (a process left with no batch) and the update's schedule
    (update_loader: mmunlearner.retain_steps=official with fewer retain than forget batches)."""
    m = ctx.cfg.mmunlearner
    check_targets(ctx.model, m.lora, ctx.cfg.model, "mmunlearner.lora")
    if m.apply_mask and not m.mask_path:
        if not m.lora.enabled:
            unlearned_groups(ctx, m)
        else:
            check_adapted_groups(ctx.model, m, ctx.cfg.model)
        data = fisher_loaders(ctx, m.fisher_labels, m.preserve_text, m.get("sequences", "template"),
                              m.preserve_batches)
        seed = ctx.cfg.seed if m.fisher_shuffle else None
        for j, (key, ds) in enumerate(data.items()):
            rank_share(fisher_batches(len(ds), m.fisher_batch_size, seed, j), 0, world, fisher_pass_name(key),
                       "mmunlearner.fisher_batch_size")  # every rank's share is refused alike
    update_loader(ctx, m.batch_size, m.retain_steps, ctx.cfg.seed, world, m.update_labels, m.retain_text,
                  m.get("sequences", "template"))


def check_adapted_groups(model, m, model_cfg) -> None:
    """Under mmunlearner.lora.enabled the mask is computed over the adapters, which `run` makes after the
    before-evaluation: each unlearned group's pattern (model.param_groups) must name an adapter's parameter, as
    group_parameters reads it there (peft's name, `base_model.model.<module>.lora_A.default.weight`). Until the
    forty-ninth session a tower none of whose modules LoRA adapts (Qwen2-VL's vision tower under
    model=qwen2_vl_7b's lora_target_modules, real_models.md's command) was refused only after the evaluation."""
    import re

    adapted = [f"base_model.model.{name}.lora_A.default.weight"
               for name in adapted_modules(model, lora_targets(m.lora, model_cfg, "mmunlearner.lora"))]
    patterns = dict(model_cfg.param_groups)
    for group in GROUPS[m.groups]:
        if not any(re.search(patterns[group], name) for name in adapted):
            group_parameters(model, {group: patterns[group]})  # a pattern that names no parameter at all
            raise ValueError(f"model.param_groups.{group}={patterns[group]!r} matches no trainable parameter (under "
                             "mmunlearner.lora.enabled only the adapters train, and mmunlearner.lora adapts no "
                             "module of that group: adapt that tower's modules, mmunlearner.lora.target_modules, "
                             "e.g. all_linear, or unlearn the other group alone, mmunlearner.groups)")


def compute_masks(ctx, groups: dict[str, list], unlearn: tuple[str, ...], gamma: float, batch_size: int,
                  labels: str = "answer", shuffle_seed: int | None = None, preserve_text: str = "train_qa",
                  mask_fraction: float | None = None, preserve_batches: str = "separate",
                  fisher_dtype: str = "float32", sequences: str = "template"):
    """The saliency masks of the unlearned groups, their parameters' names and the gamma that made them:
    `gamma` itself, or with `mask_fraction` the largest gamma that selects that fraction of them all.

    The language group's preserve Fisher: `separate` runs text-only and retain multimodal QA as two loaders
    and takes the batch-count-weighted mean of their Fishers (the mean over all preserve batches); `mixed`
    (the authors', MLLMU_gen_mask.py) runs one loader over ConcatDataset([text-only, retain multimodal]),
    whose batches (shuffled with fisher_shuffle) mix the two. `fisher_dtype=float16|bfloat16`: the authors'
    half-precision accumulation and ratio (FisherPass, official_half_mask; bfloat16: CLEAR_gen_mask.py)."""
    choice(preserve_batches, PRESERVE_BATCHES, "mmunlearner.preserve_batches")
    dtype = FISHER_DTYPES[choice(fisher_dtype, FISHER_DTYPES, "mmunlearner.fisher_dtype")]
    if dtype in HALF_DTYPES and mask_fraction is not None:
        raise ValueError(f"mmunlearner.mask_fraction={mask_fraction} sizes a mask by the float32 rule; "
                         f"it cannot be used with mmunlearner.fisher_dtype={fisher_dtype}")
    names = {p: n for n, p in ctx.model.named_parameters()}
    vision, language = groups["vision"], groups["language"]
    data = fisher_loaders(ctx, labels, preserve_text, sequences, preserve_batches)
    if preserve_batches == "mixed":
        params = {"forget": vision + language, "retain_multimodal": vision, "language_preserve": language}
    else:
        params = {"forget": vision + language, "retain_multimodal": vision + language, "text_all": language}
    module = FisherPass(ctx.model, data, params, batch_size, ctx.processor.tokenizer.pad_token_id, shuffle_seed,
                        dtype)
    # every batch, whatever +trainer.limit_val_batches shortens the evaluation to: the half-precision sums divide by
    # the full batch count, so a shortened pass would scale the two Fishers apart
    ctx.trainer(inference_mode=False, use_distributed_sampler=False, enable_model_summary=False,
                limit_val_batches=1.0).validate(module, verbose=False)
    f, rm = module.fisher["forget"], module.fisher["retain_multimodal"]
    pairs = {}
    for p in vision if "vision" in unlearn else []:
        pairs[p] = (f[p], rm[p])
    for p in language if "language" in unlearn else []:
        if preserve_batches == "mixed":
            pairs[p] = (f[p], module.fisher["language_preserve"][p])
        else:  # mean over all preserve batches
            tx, n_rm, n_tx = module.fisher["text_all"], module.batches["retain_multimodal"], module.batches["text_all"]
            preserve = (rm[p].float() * n_rm + tx[p].float() * n_tx) / (n_rm + n_tx)
            pairs[p] = (f[p], preserve.to(dtype))
    if mask_fraction is not None:
        gamma = gamma_for_fraction(list(pairs.values()), mask_fraction)
    if dtype in HALF_DTYPES:
        return {p: official_half_mask(fp, pp, gamma, dtype) for p, (fp, pp) in pairs.items()}, names, gamma
    return {p: saliency_mask(fp, pp, gamma) for p, (fp, pp) in pairs.items()}, names, gamma


MADE_HERE = "made here"  # save_masks: the mask was computed on these weights (their fingerprint is recorded)


def save_masks(masks: dict, names: dict, path, gamma: float | None = None, made_on: str | None = MADE_HERE) -> None:
    """The masks by parameter name; in the file's metadata `gamma`, the threshold that made them, so that a run
    reusing the mask (mmunlearner.mask_path) reports it too (until 2026-12-06 its mask_summary.json dropped it),
    and `weights`, the fingerprint of the weights the mask was made on (`weights_fingerprint`), so that one
    reusing it on other weights is told. `made_on`: MADE_HERE, these parameters; a mask read from a file
    (mmunlearner.mask_path) passes that file's record (None: it had none, and none is written), so that the copy
    a reusing run saves does not name the weights it was reused on as those it was made on."""
    metadata = {}
    made_on = weights_fingerprint({names[p]: p for p in masks}) if made_on == MADE_HERE else made_on
    if made_on is not None:
        metadata["weights"] = made_on
    if gamma is not None:
        metadata["gamma"] = repr(gamma)
    write_masks(path, {names[p]: m for p, m in masks.items()}, metadata or None)


def mask_metadata(path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def saved_gamma(metadata: dict) -> float | None:
    """The gamma a mask file's metadata (mask_metadata) records (None: a file written before it did, or by other
    code)."""
    value = metadata.get("gamma")
    return None if value is None else float(value)


FINGERPRINT_SAMPLES = 256  # evenly spaced elements per parameter: a few kB read, whatever the model's size


def weights_fingerprint(params: dict[str, torch.Tensor]) -> str:
    """A short hash of the named parameters' names, shapes, dtypes and evenly spaced values. Why: a saliency mask
    picks the elements salient for the weights it was computed on; reused (mmunlearner.mask_path) on another
    vanilla model, seed or LoRA initialisation, it still loads (the names and shapes match) and its steps move
    that other model's elements without a word (a walk-through's finding, forty-fifth session)."""
    import hashlib

    h = hashlib.sha256()
    for name in sorted(params):
        flat = params[name].detach().reshape(-1)
        step = max(1, flat.numel() // FINGERPRINT_SAMPLES)
        h.update(f"{name}|{tuple(params[name].shape)}|{params[name].dtype}|".encode())
        h.update(flat[::step][:FINGERPRINT_SAMPLES].float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def check_mask_weights(path, masks: dict, names: dict, saved: str | None) -> bool:
    """Whether the mask file at `path`, whose metadata records `saved` (its `weights`), was made on these weights;
    warned where not (a file without the record, written before it was kept, is taken as it is)."""
    if saved is None or saved == weights_fingerprint({names[p]: p for p in masks}):
        return True
    log.warning("mmunlearner.mask_path=%s was made on other weights than this run's model (their fingerprints "
                "differ: another vanilla model, seed, LoRA initialisation or dtype): its mask selects the elements "
                "salient for those, and this run's steps move them here", path)
    return False


def load_masks(path, model) -> dict:
    """Masks from a file, re-keyed to this model's parameter objects; every name must be found."""
    params = dict(model.named_parameters())
    masks = {}
    for name, m in load_file(str(path)).items():
        if name not in params:
            raise ValueError(f"mmunlearner.mask_path={path}: tensor {name!r} is not a parameter of this model")
        if m.shape != params[name].shape:
            raise ValueError(f"mmunlearner.mask_path={path}: {name} has shape {tuple(m.shape)}, "
                             f"the parameter {tuple(params[name].shape)}")
        masks[params[name]] = m.bool()
    return masks


def run(ctx) -> None:
    m = ctx.cfg.mmunlearner
    refuse_fsdp(ctx.cfg, "mmunlearner")
    if m.groups not in GROUPS:
        raise ValueError(f"mmunlearner.groups={m.groups!r}: expected one of {list(GROUPS)}")
    if m.mask_path and m.get("mask_fraction") is not None:
        raise ValueError(f"mmunlearner.mask_path={m.mask_path} reuses a saved mask, so "
                         f"mmunlearner.mask_fraction={m.mask_fraction} cannot size it: set one of them")
    out = ctx.out_dir / "mmunlearner"
    out.mkdir(parents=True, exist_ok=True)
    text = m.retain_text or (m.get("apply_mask", True) and m.groups != "vision")  # text-only data is read
    check_writing(m.get("sequences", "template"), ctx.processor.family, ("multimodal", "text") if text else
                  ("multimodal",), "mmunlearner.sequences")  # before the mask pass
    if m.get("start_precision"):  # their scripts' load in that precision, upcast: before the mask pass and update
        round_parameters(ctx.model, dtype_named(m.start_precision, "mmunlearner.start_precision"))
    # the authors' mask scripts (MLLMU_gen_mask.py, CLEAR_gen_mask.py) score the vanilla model as loaded, and only
    # their update scripts resize (MLLMU_manifold.py:112, CLEAR_manifold.py:76): the mask pass runs on the model
    # before the resize, unless the mask is over LoRA adapters (this project's path), which wrap the resized model
    resize = m.get("resize_embeddings")
    mask_first = m.apply_mask and not m.lora.enabled and resize is not None  # else the masks stay as computed
    if not mask_first:
        resize_embeddings(ctx.model, ctx.processor.tokenizer, resize, "mmunlearner.resize_embeddings")
    if m.lora.enabled:  # saliency and updates live on the adapters; masks are keyed by object, not name
        targets = lora_targets(m.lora, ctx.cfg.model, "mmunlearner.lora")
        ctx.model = with_saliency_lora(ctx.model, m.lora, targets, m.apply_mask)
    if m.apply_mask:
        masks = saliency_stage(ctx, m, out)
        if mask_first:
            masks = resized_with_masks(ctx.model, masks, ctx.processor.tokenizer, resize)
    else:  # the authors' LLaVA run: their name-keyed mask matches no peft name, so none applies
        if m.mask_path:
            raise ValueError(f"mmunlearner.mask_path={m.mask_path} is a mask, and mmunlearner.apply_mask=false "
                             "applies none: set one of them")
        log.info("MMUnlearner: mmunlearner.apply_mask=false, no saliency mask: unmasked ascent and descent")
        ctx.artifacts["mmunlearner"] = {"apply_mask": False}
        masks = None
    masked_update(ctx, masks, m)
    if m.lora.enabled:
        ctx.model = ctx.model.merge_and_unload()
    ctx.model.eval()


def resized_with_masks(model, masks: dict, tokenizer, resize) -> dict:
    """`mmunlearner.resize_embeddings` after the mask pass: the resized tensors (embeddings, lm_head) are new
    parameters, so the masks are re-keyed by name, a resized tensor's mask cut (or padded unselected) to its rows."""
    by_name = {n: masks[p] for n, p in model.named_parameters() if p in masks}
    resize_embeddings(model, tokenizer, resize, "mmunlearner.resize_embeddings")
    out = {}
    for name, p in model.named_parameters():
        if name in by_name:
            mask = by_name[name]
            rows = p.shape[0]
            if mask.shape[0] > rows:
                mask = mask[:rows]
            elif mask.shape[0] < rows:
                mask = torch.cat([mask, mask.new_zeros((rows - mask.shape[0], *mask.shape[1:]))])
            out[p] = mask
    return out


def unlearned_groups(ctx, m) -> dict:
    """The parameter groups the mask is computed over: model.param_groups' towers that mmunlearner.groups names,
    cut to mmunlearner.eligible (each pattern refused where it matches nothing)."""
    return eligible_parameters(ctx.model, group_parameters(ctx.model, dict(ctx.cfg.model.param_groups),
                                                           GROUPS[m.groups]), m.eligible)


def saliency_stage(ctx, m, out) -> dict:
    """Stage 1: the mask (computed, or read from mmunlearner.mask_path), reported, saved and logged."""
    if m.mask_path:
        masks, names = load_masks(m.mask_path, ctx.model), {p: n for n, p in ctx.model.named_parameters()}
        metadata = mask_metadata(m.mask_path)  # the file's header, read once
        gamma = saved_gamma(metadata)  # what made it, where the file records it
        made_on = metadata.get("weights")  # the weights it was made on, kept in the copy saved
        check_mask_weights(m.mask_path, masks, names, made_on)
    else:
        groups = unlearned_groups(ctx, m)
        masks, names, gamma = compute_masks(ctx, groups, GROUPS[m.groups], m.gamma, m.fisher_batch_size,
                                            m.fisher_labels, ctx.cfg.seed if m.fisher_shuffle else None,
                                            m.preserve_text, m.get("mask_fraction"), m.preserve_batches,
                                            m.fisher_dtype, m.get("sequences", "template"))
        made_on = MADE_HERE
    report = mask_report(masks, names)
    if report["selected"] == 0:
        raise ValueError(f"the saliency mask selects no weight (mmunlearner.gamma={m.gamma}); lower gamma")
    if gamma is not None:
        report["gamma"] = gamma
    log.info("MMUnlearner mask: %d of %d elements (%.2f%%) in %d tensors", report["selected"], report["elements"],
             100 * report["fraction"], report["parameters"])
    if ctx.is_global_zero:
        from unlearn.mmunlearner.plots import save_mask_sparsity

        save_masks(masks, names, out / "mask.safetensors", gamma, made_on)
        write_json(out / "mask_summary.json", report)
        image = save_mask_sparsity(report, out / "mask_sparsity.png")
        if hasattr(ctx.logger, "log_image"):
            ctx.logger.log_image(key="mmunlearner/mask_sparsity", images=[str(image)])
    ctx.artifacts["mmunlearner"] = {k: report[k] for k in ("parameters", "elements", "selected", "fraction", "gamma")
                                    if k in report}
    return masks


def with_saliency_lora(model, lora_cfg, target_modules, apply_mask: bool = True):
    """LoRA adapters whose two factors both receive gradient from the first step (when a mask is applied).

    peft's default starts B at 0, so dL/dA = B^T (dL/dW) (scaled) is exactly 0: every lora_A element has zero
    Fisher, the saliency mask can never select one (0/0 counts as 0), and forget steps, masked to lora_B,
    move only B, a rank-r update of the output side. PiSSA (`init: pissa`, peft's `init_lora_weights`)
    instead puts the top-r singular directions of W into B and A and subtracts them from the base weight,
    so the model's function is unchanged (up to rounding), both factors are non-zero, and the Fisher of
    each factor is that of the base weight's most important subspace: a mask over it is well defined in
    every adapted module. Any peft initialisation with both factors non-zero (`olora`, `pissa_niter_K`) is
    accepted; one that zeroes a factor is refused while a mask is applied. With `apply_mask=false` (no mask,
    the authors' LLaVA run) any init is accepted, `gaussian` being theirs.

    `target_modules`: a list or regex for peft, or `all_linear`, the authors' find_all_linear_names
    (`all_linear_targets`: every Linear but lm_head and embeddings, vision tower and projector included), or
    `all_linear_and_head`, the same with lm_head, as that function adapts LLaVA under their transformers.
    """
    from peft import LoraConfig, get_peft_model

    if apply_mask and lora_cfg.init in LORA_INITS_WITH_ZERO_FACTOR:
        raise ValueError(f"mmunlearner.lora.init={lora_cfg.init!r} starts lora_B at 0, so no lora_A element "
                         "ever gets gradient or saliency; use pissa, pissa_niter_4 or olora "
                         "(or mmunlearner.apply_mask=false, which applies no mask)")
    config = LoraConfig(r=lora_cfg.r, lora_alpha=lora_cfg.alpha, lora_dropout=lora_cfg.get("dropout", 0.0),
                        target_modules=peft_targets(model, target_modules), init_lora_weights=lora_cfg.init)
    return get_peft_model(model, config)


def update_loader(ctx, batch_size: int, retain_steps: int | str | None, seed: int, world_size: int = 1,
                  labels: str = "answer", retain_text: bool = True, sequences: str = "template"):
    """The update's loader and its retain steps per forget step k (the official schedule's forget_freq).

    Every forget batch is used once per epoch. `retain_steps`: an int k, or null for about one pass over the
    retain data per epoch (`even_retain_steps`): k retain batches after each forget step (`even_schedule`);
    `official`: the authors' schedule (`official_schedule`): forget_freq = n_retain_batches // n_forget_batches
    retain batches after each forget step, every retain batch once, the rest after the last one. Counted in
    global batches, so every rank and every world size at the same global batch walks the same steps.
    Batches are `batch_size` per process. Retain data: multimodal QA, plus text-only QA with `retain_text`
    (the authors use multimodal only)."""
    proc, pad = recipe_processor(ctx, "mmunlearner"), ctx.processor.tokenizer.pad_token_id
    forget = qa_data(ctx.benchmark.train_rows("forget"), proc, "multimodal", labels, sequences)
    forms = ("multimodal", "text") if retain_text else ("multimodal",)
    retain = ConcatDataset([qa_data(ctx.benchmark.train_rows("retain"), proc, f, labels, sequences) for f in forms])
    glob = batch_size * world_size
    n_f, n_r = math.ceil(len(forget) / glob), math.ceil(len(retain) / glob)
    if retain_steps == "official":
        official_schedule(n_f, n_r)  # refuses fewer retain than forget batches, before training starts
        k, schedule = n_r // n_f, official_schedule
    elif retain_steps is None or (isinstance(retain_steps, int) and retain_steps >= 1):
        k = retain_steps or even_retain_steps(len(forget), len(retain), glob)
        schedule = functools.partial(even_schedule, k=k)
    else:
        raise ValueError(f"mmunlearner.retain_steps={retain_steps!r}: expected null, a positive int or 'official'")
    sampler = ScheduledBatches(EpochShuffle(len(forget), seed), EpochShuffle(len(retain), seed + 1), batch_size,
                               schedule)
    return DataLoader(Tagged(UnlabelledRepeats(forget), UnlabelledRepeats(retain)), batch_sampler=sampler,
                      collate_fn=lambda items: collate_scheduled(items, lambda b: collate(b, pad))), k


def masked_update(ctx, masks: dict, m, callbacks=()) -> MaskedUnlearning:
    """Stage 2 on `ctx.model` with the given masks (`m`: the `mmunlearner` config)."""
    from hydra.utils import instantiate

    trainer = ctx.trainer(max_epochs=m.epochs, gradient_clip_val=None, enable_checkpointing=False,
                          use_distributed_sampler=False, callbacks=list(callbacks))  # EpochShuffle shards itself
    loader, _ = update_loader(ctx, m.batch_size, m.retain_steps, ctx.cfg.seed, trainer.world_size,
                              m.update_labels, m.retain_text, m.get("sequences", "template"))
    module = MaskedUnlearning(ctx.model, masks, instantiate(m.forget_optimizer), instantiate(m.retain_optimizer),
                              m.clip, m.optimizers, m.restore_masked, m.clip_scope, m.get("clip_retain", True),
                              m.get("token_mean", "global"))
    trainer.fit(module, loader)
    return module
