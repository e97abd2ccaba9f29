"""RMU (Representation Misdirection for Unlearning; Li et al. 2024, "The WMDP Benchmark") as a method from outside
the package: the second worked example of docs/guide/adding_a_method.md, of another kind than SimNPO's.

SimNPO is a loss on the logits. RMU is a loss on the hidden states of one decoder layer of the language model:
the forget inputs' hidden states there are pushed toward a fixed random vector (a direction drawn once, scaled to
the norm `steering_coeff`), and the retain inputs' hidden states there are held to a frozen copy's of the starting
model; only a chosen few parameters train. So it needs what SimNPO did not: the output of decoder layer k (a
forward hook), a frozen reference copy, and a chosen subset of trainable parameters.

The computation is open-unlearning's (src/trainer/unlearn/rmu.py, after centerforaisafety/wmdp rmu/unlearn.py),
held against a port of it in tests/test_rmu_example.py:
- the activations: the output of the one module whose name full-matches `module_regex` (a forward hook, rmu.py:83-98);
- the control vector: torch.rand(1, 1, d) over its norm times steering_coeff, drawn once (rmu.py:100-106);
- the distance: squared difference per element, mean over the hidden size, summed over the labelled positions
  (labels != -100, unshifted), over the row's labelled count, mean over rows (compute_activation_loss, rmu.py:108-117);
- the loss: gamma * distance(forget, control) + alpha * distance(retain, reference's retain) (retain_loss_type
  EMBED_DIFF, rmu.py:119-171).

Where this one departs, and why (each also in rmu.yaml or below): the forget and retain rows keep their images (the
text-only LLM trainer passes input_ids, attention_mask and labels only: a multimodal row would lose its image); the
control vector is drawn from the run's seed, not from the global random state at the first step; the distance is
computed in float32; the mean over rows is of each row's own mean (the comments' [b, 1] shapes): open-unlearning's
code divides the rows' sums, shape [b], by their counts, shape [b, 1], and averages the [b, b] table, which is
mean(sums) * mean(1 / counts), the same where every row has as many label tokens (one row per device, as its WMDP
runs take) and not otherwise (tests/test_rmu_example.py pins both); rows without labels (a data-parallel shard's
padding repeats) are left out of the mean rather than dividing by zero; parameters outside the trainable set are frozen (requires_grad False) through the fit,
where open-unlearning sets requires_grad back on every parameter after building the optimiser, so its gradient
clipping (the HF Trainer's max_grad_norm, over model.parameters()) measures the frozen parameters' gradients too,
and Lightning's (trainer.gradient_clip_val) measures the trained ones only; each forward stops at the hooked layer
(nothing after it enters the loss: the same values, the later layers and the output layer not computed), and the
frozen reference holds only what that forward runs (reference_copy: no decoder layer after the hooked one, no output
layer; open-unlearning's is a whole copy).

Run (from the repository root):
    PYTHONPATH=examples/rmu python train.py method=rmu 'hydra.searchpath=[file://examples/rmu/configs]'
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Sequence

import lightning as L
import torch
from hydra.utils import instantiate

from unlearn.eval.scoring import model_inputs
from unlearn.methods.gradient import frozen_reference_expected, paired_loader
from unlearn.methods.guards import check_finite

log = logging.getLogger(__name__)

IGNORE = -100


# ---------------------------------------------------------------------------------------------- the loss (pure)

def control_vector(dim: int, steering_coeff: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A direction drawn uniformly from [0, 1)^dim (every component positive, as open-unlearning's and WMDP's
    torch.rand), scaled to the norm `steering_coeff`: shape [dim]."""
    if steering_coeff <= 0:
        raise ValueError(f"rmu.steering_coeff must be > 0, got {steering_coeff}")
    v = torch.rand(dim, generator=generator, dtype=torch.float32)
    return v / v.norm() * steering_coeff


def activation_distance(activations: torch.Tensor, target: torch.Tensor, labels: torch.Tensor,
                        shard: bool = False) -> torch.Tensor:
    """Mean over rows of: the squared difference (activations - target), mean over the hidden size, summed over
    the row's labelled positions (labels != -100, the label at the position itself, not shifted), over their count.

    `activations`: [rows, positions, hidden]; `target`: the same shape, or [hidden] (a control vector, broadcast).
    In float32 whatever the activations' dtype. Rows without labels (a data-parallel shard's padding repeats) are
    left out of the mean; `shard`: this is one of several processes' batches, which may hold padding repeats alone,
    and adds nothing then (still in the graph, so that DDP's gradient reduction meets every rank)."""
    mask = labels != IGNORE
    if mask.shape != activations.shape[:2]:
        raise ValueError(f"labels {tuple(labels.shape)} do not cover the activations' positions "
                         f"{tuple(activations.shape[:2])}")
    rows = mask.any(-1)
    if not rows.any():
        if shard:
            return activations.sum() * 0.0
        raise ValueError("rmu: a batch has no label tokens")
    per_position = (activations.float() - target.float()).pow(2).mean(-1)  # [rows, positions]
    per_row = (per_position * mask).sum(-1)[rows] / mask.sum(-1)[rows]
    return per_row.mean()


def rmu_loss(forget_acts: torch.Tensor, forget_labels: torch.Tensor, control: torch.Tensor,
             retain_acts: torch.Tensor, reference_acts: torch.Tensor, retain_labels: torch.Tensor,
             gamma: float = 1.0, alpha: float = 1.0, shard: bool = False) -> tuple[torch.Tensor, torch.Tensor,
                                                                                   torch.Tensor]:
    """gamma * distance(forget activations, control vector) + alpha * distance(retain activations, the frozen
    reference's on the same rows); returns (loss, forget term, retain term), the terms unweighted."""
    forget = activation_distance(forget_acts, control, forget_labels, shard)
    retain = activation_distance(retain_acts, reference_acts.detach(), retain_labels, shard)
    return gamma * forget + alpha * retain, forget, retain


# ------------------------------------------------------------------------------------- the model's pieces

LAYERS = "{layers}"  # in rmu.module_regex and rmu.trainable_params_regex: the language model's decoder layer list


def decoder_layers(model: torch.nn.Module) -> tuple[str, torch.nn.ModuleList]:
    """The language model's decoder layers and their name in `model`, found by transformers' own `get_decoder()`
    (the language model of a vision-language model; the model itself, or its base model, for a text-only one)
    and its `layers` list: `model.language_model.layers` in LLaVA and Qwen2-VL, `model.text_model.layers` in
    Idefics2, `model.layers` in a text-only Llama (open-unlearning's `model\\.layers\\.7`)."""
    get = getattr(model, "get_decoder", None)
    layers = getattr(get(), "layers", None) if callable(get) else None
    if isinstance(layers, torch.nn.ModuleList):
        for name, module in model.named_modules():
            if module is layers:
                return name, layers
    raise ValueError(f"{type(model).__name__}: no decoder layer list found (transformers' get_decoder().layers), "
                     f"so {LAYERS} names nothing here; name the modules and parameters without it")


def resolve(model: torch.nn.Module, pattern: str) -> str:
    """`pattern` with {layers} replaced by the (escaped) name of the model's decoder layer list, so that one pattern
    (`{layers}\\.7`) names decoder layer 7 of every model family; a pattern without it is returned as it is."""
    return pattern.replace(LAYERS, re.escape(decoder_layers(model)[0])) if LAYERS in pattern else pattern


def _hint(model: torch.nn.Module) -> str:
    """What {layers} names in this model, for an error that names nothing."""
    try:
        prefix, layers = decoder_layers(model)
    except ValueError:
        return ""
    return (f"; {LAYERS} is {prefix} here, the language model's {len(layers)} decoder layers "
            f"({LAYERS}\\.0 to {LAYERS}\\.{len(layers) - 1}, numbered from 0)")


def matching_module(model: torch.nn.Module, pattern: str, key: str = "rmu.module_regex") -> tuple[str, torch.nn.Module]:
    """The one module whose name full-matches `pattern` (open-unlearning's _get_matching_module), {layers} in it
    standing for the language model's decoder layer list (`resolve`)."""
    full = resolve(model, pattern)
    found = [(n, m) for n, m in model.named_modules() if re.fullmatch(full, n)]
    if len(found) != 1:
        what = "no module" if not found else f"{len(found)} modules ({[n for n, _ in found][:5]})"
        if full != pattern:  # a layer of the language model's, past its last (or a name in none)
            raise ValueError(f"{key}={pattern!r} ({full}) matches {what}; it must name one (full match){_hint(model)}")
        layers = [n for n, _ in model.named_modules() if re.fullmatch(r".*\.layers\.\d+", n)]
        raise ValueError(f"{key}={pattern!r} matches {what}; it must name one (full match). The model's decoder "
                         f"layers: {layers[:3]}{' ...' if len(layers) > 3 else ''}{_hint(model)}")
    return found[0]


def trainable_names(model: torch.nn.Module, patterns: Sequence[str], key: str = "rmu.trainable_params_regex") -> list[str]:
    """The parameters whose names full-match any of `patterns` ({layers} as in `matching_module`); each pattern
    must match one at least."""
    if isinstance(patterns, str):
        raise ValueError(f"{key} is a list of patterns, got the string {patterns!r}")
    names = [n for n, _ in model.named_parameters()]
    full = [resolve(model, p) for p in patterns]
    for p, f in zip(patterns, full):
        if not any(re.fullmatch(f, n) for n in names):
            raise ValueError(f"{key}: {p!r} matches no parameter (full match); e.g. {names[:2]}{_hint(model)}")
    return [n for n in names if any(re.fullmatch(f, n) for f in full)]


def reference_copy(model: torch.nn.Module, module_name: str) -> torch.nn.Module:
    """The frozen reference, in eval mode: a copy of what a forward up to `module_name` runs. Where that module is
    (or lies in) the language model's decoder layer k, the copy holds decoder layers 0 to k and no output layer;
    the rest (the vision tower, projector, embeddings, the final norm) as the model's. The layers after k and the
    output layer are never copied (the deepcopy's memo hands back None for them), so memory peaks at the
    reference's size, not at a second whole model's. At LLaVA-1.5-7B's shape it holds 0.66 G of the model's 7.06 G
    parameters at k = 0 (the example's), 2.07 G at k = 7 (open-unlearning's): 2.6 or 8.3 GB in float32 instead of
    28.3 (tests/test_rmu_example.py). Elsewhere (a module outside the decoder layers, a model without `get_decoder`) the
    whole model, as open-unlearning's _prepare_ref_model copies it."""
    try:
        prefix, layers = decoder_layers(model)
    except ValueError:
        prefix, layers = None, None
    k = next((i for i in range(len(layers or ())) if module_name == f"{prefix}.{i}"
              or module_name.startswith(f"{prefix}.{i}.")), None)
    if k is None:
        log.info("rmu: %s is not in the language model's decoder layers: the frozen reference is a whole copy",
                 module_name)
        return copy.deepcopy(model).eval().requires_grad_(False)
    unused = list(layers)[k + 1:]
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if isinstance(output, torch.nn.Module):
        unused.append(output)
    reference = copy.deepcopy(model, {id(m): None for m in unused})  # None: not copied, a child left empty
    del reference.get_submodule(prefix)[k + 1:]
    return reference.eval().requires_grad_(False)


class _Reached(Exception):
    """Raised by the hook once the layer's output is held: nothing after the layer enters the loss."""


def layer_output(model: torch.nn.Module, layer: torch.nn.Module, inputs: dict) -> torch.Tensor:
    """The output of `layer` (its hidden states, [rows, positions, hidden]) on a forward of `model` over `inputs`.
    The forward stops there (the later layers and the output layer are not computed); the hook lives for this call
    only, so a recomputation in the backward pass (activation checkpointing) does not meet it."""
    held: list[torch.Tensor] = []

    def hook(module, args, output):
        held.append(output[0] if isinstance(output, tuple) else output)
        raise _Reached

    handle = layer.register_forward_hook(hook)
    try:
        model(**inputs, use_cache=False)
    except _Reached:
        pass
    finally:
        handle.remove()
    if not held:
        raise RuntimeError("rmu: the forward pass never reached the hooked layer")
    return held[0]


# ------------------------------------------------------------------------------------------ the training step

class RMU(L.LightningModule):
    """One joint step per forget batch and retain batch; only the parameters in `trainable` train."""

    def __init__(self, model: torch.nn.Module, optimizer, module_name: str, trainable: Sequence[str],
                 steering_coeff: float, gamma: float, alpha: float, seed: int = 0):
        super().__init__()
        self.model, self.optimizer_factory = model, optimizer
        self.module_name, self.trainable = module_name, list(trainable)
        self.steering_coeff, self.gamma, self.alpha, self.seed = steering_coeff, gamma, alpha, seed
        self.control: torch.Tensor | None = None  # drawn at the first step, of the activations' width
        # the frozen starting model (open-unlearning's _prepare_ref_model: a deep copy in eval mode), up to the
        # steered layer only (reference_copy); named `reference`, so the framework's frozen_reference_expected
        # silences Lightning's eval-mode warning for it
        self.reference = reference_copy(model, module_name)
        self._unreached_checked = False

    def on_fit_start(self) -> None:
        self.model.train()  # from_pretrained leaves a model in eval mode (dropout off)
        self.reference.eval()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        forget, retain = batch["forget"], batch["retain"]
        shard = self.trainer.world_size > 1
        layer = self.model.get_submodule(self.module_name)  # looked up, not held: held, it is a second child module
        forget_acts = layer_output(self.model, layer, model_inputs(forget, self.device))
        retain_acts = layer_output(self.model, layer, model_inputs(retain, self.device))
        with torch.no_grad():
            self.reference.eval()  # whatever put the LightningModule in train mode, the reference never is
            reference_acts = layer_output(self.reference, self.reference.get_submodule(self.module_name),
                                          model_inputs(retain, self.device))
        if self.control is None:  # every process draws the same vector (the run's seed)
            self.control = control_vector(forget_acts.shape[-1], self.steering_coeff,
                                          torch.Generator().manual_seed(self.seed)).to(self.device)
        loss, f, r = rmu_loss(forget_acts, forget["labels"].to(self.device), self.control, retain_acts,
                              reference_acts, retain["labels"].to(self.device), self.gamma, self.alpha, shard)
        check_finite(loss, self.global_step, "the method=rmu loss")  # stop before a NaN reaches the weights
        size = forget["input_ids"].shape[0]
        self.log("unlearn/loss", loss, prog_bar=True, batch_size=size, sync_dist=True)
        self.log_dict({"unlearn/rmu_forget": f, "unlearn/rmu_retain": r}, batch_size=size, sync_dist=True)
        return loss

    def on_after_backward(self) -> None:
        """Once: trainable parameters the loss never reaches (after the hooked layer, or the image tower under
        text-only data) are named; they stay as they are."""
        if self._unreached_checked:
            return
        self._unreached_checked = True
        unreached = [n for n, p in self.model.named_parameters() if p.requires_grad and p.grad is None]
        if unreached:
            log.warning("rmu: %d of the %d trainable parameters receive no gradient from the loss (the output of "
                        "%s depends on none of them here), and stay as they are: %s", len(unreached),
                        len(self.trainable), self.module_name, unreached[:5])

    def configure_optimizers(self):
        return self.optimizer_factory([p for p in self.model.parameters() if p.requires_grad])


# ------------------------------------------------------------------------------------------------ the method

def check_before_evaluation(ctx, world: int) -> None:
    """The refusals the settings and the model's names alone make, before the before-evaluation."""
    from unlearn.fsdp_refusals import refuse_fsdp

    # unchecked under FSDP's sharded parameters: the forward stops at the hooked layer by raising out of it, and
    # the trained subset is chosen by name (FSDP flattens names and weights); refused rather than run unverified
    refuse_fsdp(ctx.cfg, "rmu", "the example is not checked under FSDP's sharding (its forward stops inside the "
                                "model at the hooked layer); run it under trainer=ddp")
    s = ctx.cfg.rmu
    matching_module(ctx.model, s.module_regex)
    trainable_names(ctx.model, s.trainable_params_regex)
    if s.steering_coeff <= 0:
        raise ValueError(f"rmu.steering_coeff must be > 0, got {s.steering_coeff}")


def run(ctx) -> None:
    """The method: change `ctx.model` in place. Its settings are the top-level `rmu` section of its config."""
    s = ctx.cfg.rmu
    module_name, _ = matching_module(ctx.model, s.module_regex)
    trainable = set(trainable_names(ctx.model, s.trainable_params_regex))
    was = {n: p.requires_grad for n, p in ctx.model.named_parameters()}
    for n, p in ctx.model.named_parameters():
        p.requires_grad_(n in trainable)
    count = sum(p.numel() for n, p in ctx.model.named_parameters() if n in trainable)
    ctx.artifacts.update(rmu_layer=module_name, rmu_trainable_parameters=count,
                         rmu_trainable_tensors=len(trainable))
    log.info("rmu: steering %s toward a vector of norm %s; training %d tensors (%d parameters)", module_name,
             s.steering_coeff, len(trainable), count)
    try:
        loader = paired_loader(ctx, ctx.cfg.data.forget_modality, s.batch_size, seed=ctx.cfg.seed)
        module = RMU(ctx.model, instantiate(s.optimizer), module_name, sorted(trainable), s.steering_coeff, s.gamma,
                     s.alpha, int(ctx.cfg.seed))
        with frozen_reference_expected(module):
            # the loader shards its own epochs across processes (as the built-in gradient methods do)
            ctx.trainer(max_epochs=s.epochs, use_distributed_sampler=False).fit(module, loader)
        del module  # the reference copy goes with it
    finally:
        for n, p in ctx.model.named_parameters():
            p.requires_grad_(was[n])
    ctx.model.eval()

