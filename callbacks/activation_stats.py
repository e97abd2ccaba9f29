"""Streaming per-neuron activation statistics during a no-grad validation pass.

Hooks every MLP module matched by the model's name patterns and adds, per (dataloader key, module),
the sufficient statistics of its neurons (`unlearn.manu.moments.Moments`). Padding positions are not
tokens: the activations of modules of the `language` tower (by the `model.mlp_modules` key they matched, not
by their shape) are masked with the batch's attention mask; those of a vision tower whose encoder is given a
patch mask (Idefics2, which pads a batch's images to one size) with that mask, read from the encoder's call
(until 2026-12-05 Idefics2's padding patches counted as tokens, so a neuron's statistics depended on which
images shared its batch); LLaVA's and Qwen2-VL's vision towers see no padding. At the end of the
pass the sums are all-reduced across ranks, so every rank holds the same totals (and computes the same
mask from them). Hooks are removed at the end of the pass, on error and at teardown.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Mapping

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from unlearn.manu.choices import NEURONS
from unlearn.manu.moments import FIELDS, Moments
from unlearn.rank_sum import sum_over_ranks

log = logging.getLogger(__name__)


class ModuleMatchError(ValueError):
    pass


def match_modules(model: torch.nn.Module, patterns: Mapping[str, str],
                  key: str = "model.mlp_modules") -> dict[str, str]:
    """module name -> tower for every module whose name matches a tower's regex (full match); `key`: the setting
    that gave the patterns."""
    found: dict[str, str] = {}
    names = [n for n, _ in model.named_modules()]
    for tower, pattern in patterns.items():
        rx = re.compile(pattern)
        hits = [n for n in names if rx.fullmatch(n)]
        if not hits:
            shown = [n for n in names if n.endswith(("proj", "fc1", "fc2", "mlp"))] or names
            raise ModuleMatchError(
                f"{key}.{tower}={pattern!r} matches no module; module names seen include: "
                + ", ".join(shown[:40]) + (" ..." if len(shown) > 40 else "")
            )
        for n in hits:
            found[n] = tower
    return found


def unread_vision_layers(model: torch.nn.Module) -> set[int]:
    """The vision encoder layers whose output never reaches the language model: LLaVA reads the hidden state of
    `vision_feature_layer` (-2 for LLaVA-1.5: its last layer is computed and dropped). Their neurons change
    nothing when pruned, so they are not candidates (until 2026-12-05 1/24 of LLaVA-1.5-7B's vision neurons were,
    and a share of the tower's alpha went to them). Other families read their last layer: none."""
    config = getattr(model, "config", None)
    chosen = getattr(config, "vision_feature_layer", None)
    layers = getattr(getattr(config, "vision_config", None), "num_hidden_layers", None)
    if chosen is None or not layers:
        return set()
    chosen = list(chosen) if isinstance(chosen, (list, tuple)) else [chosen]
    # hidden_states[0] is the embeddings, hidden_states[k] layer k-1's output; a negative index counts from the end
    last = max(layers + c if c < 0 else c - 1 for c in chosen)
    return set(range(last + 1, layers))


_LAYER = re.compile(r"\.layers\.(\d+)\.")


def patch_masked_encoders(model: torch.nn.Module, hooked: list[str]) -> list[torch.nn.Module]:
    """The outermost modules above the hooked vision modules whose forward takes a `patch_attention_mask` (the
    padding of the images it encodes, one row of patches per image): where the vision padding is read."""
    found: list[tuple[str, torch.nn.Module]] = []
    for name, module in model.named_modules():
        if not any(h.startswith(name + ".") for h in hooked) or any(name.startswith(f + ".") for f, _ in found):
            continue
        try:
            takes = "patch_attention_mask" in inspect.signature(module.forward).parameters
        except (TypeError, ValueError):
            takes = False
        if takes:
            found.append((name, module))
    return [m for _, m in found]


class ActivationStatistics(Callback):
    """Collects `self.moments[key][module]` for key in the pass module's `loader_keys`.

    neuron="input": the MLP's intermediate unit (input of down_proj / fc2; the default).
    neuron="output": the hooked Linear's output rows (of fc2 / down_proj only, as `model.mlp_modules` matches;
    the authors' selection, which also hooks fc1, gate_proj and up_proj, is `manu.selection=official`).
    """

    def __init__(self, patterns: Mapping[str, str], tau: float = 0.1, neuron: str = "input",
                 mask_padding: bool = True):
        if neuron not in NEURONS:
            raise ValueError(f"manu.neuron={neuron!r}: expected 'input' or 'output'")
        self.patterns, self.tau, self.neuron = dict(patterns), float(tau), neuron
        if not isinstance(mask_padding, bool):  # bool("false") is true (unlearn.settings refuses it first)
            raise ValueError(f"manu.mask_padding={mask_padding!r}: expected true or false")
        self.mask_padding = mask_padding  # false: pads count as tokens, as in the MANU authors' code
        self.towers: dict[str, str] = {}
        self.moments: dict[str, dict[str, Moments]] = {}
        self._handles: list = []
        self._key: str | None = None
        self._mask: torch.Tensor | None = None
        self._rows: torch.Tensor | None = None
        self._patches: torch.Tensor | None = None  # the vision encoder's patch mask in this forward, if given
        self._patch_rows: torch.Tensor | None = None  # its patches' rows, found once per encoder call
        self.skipped_grad_calls = 0

    # --- hooks ----------------------------------------------------------------------------------
    def _record(self, name: str, acts: torch.Tensor) -> None:
        if torch.is_grad_enabled():
            # a gradient-checkpointing recompute (or any grad-mode forward) is not part of the pass
            self.skipped_grad_calls += 1
            return
        if self._key is None:
            return
        width = acts.shape[-1]
        if self._mask is not None and self.towers[name] == "language":  # routed by tower, never by shape
            if acts.shape[:-1] != self._mask.shape:
                raise ValueError(f"{name}: language activations of shape {tuple(acts.shape)} do not match the "
                                 f"attention mask {tuple(self._mask.shape)}; padding cannot be masked")
            flat = acts.reshape(-1, width).index_select(0, self._rows.to(acts.device))
        elif self._patches is not None:  # a vision tower given a patch mask: its padding patches are not tokens
            if acts.shape[:-1].numel() != self._patches.numel() or acts.shape[0] != self._patches.shape[0]:
                raise ValueError(f"{name}: vision activations of shape {tuple(acts.shape)} do not match the "
                                 f"encoder's patch mask {tuple(self._patches.shape)}; padding cannot be masked")
            flat = acts.reshape(-1, width).index_select(0, self._patch_rows.to(acts.device))
        else:  # vision tower: every patch of every image is a token
            flat = acts.reshape(-1, width)
        per_key = self.moments.setdefault(self._key, {})
        batch = Moments.of(flat, self.tau)
        if name in per_key:
            per_key[name].add_(batch)
        else:
            per_key[name] = batch

    def attach(self, model: torch.nn.Module) -> None:
        self.detach()
        self.towers = match_modules(model, self.patterns)
        unread = unread_vision_layers(model)
        if unread:
            dropped = [n for n, t in self.towers.items() if t != "language" and (m := _LAYER.search(n))
                       and int(m.group(1)) in unread]
            for n in dropped:
                del self.towers[n]
            if dropped:
                log.info("MANU: the vision layers %s are not read by the language model (vision_feature_layer): "
                         "their %d hooked modules are not candidates", sorted(unread), len(dropped))
        modules = dict(model.named_modules())
        for name in self.towers:
            mod = modules[name]
            if self.neuron == "input":
                h = mod.register_forward_pre_hook(lambda m, args, name=name: self._record(name, args[0]))
            else:
                h = mod.register_forward_hook(lambda m, args, out, name=name: self._record(name, out))
            self._handles.append(h)
        if self.mask_padding:
            for encoder in patch_masked_encoders(model, [n for n, t in self.towers.items() if t != "language"]):
                self._handles.append(encoder.register_forward_pre_hook(self._read_patches, with_kwargs=True))

    def _read_patches(self, module, args, kwargs) -> None:
        mask = kwargs.get("patch_attention_mask", args[1] if len(args) > 1 else None)
        self._patches = None if mask is None else mask.bool()
        # once per encoder call, as the language rows once per batch (begin_batch), not per hooked layer
        self._patch_rows = None if mask is None else self._patches.reshape(-1).nonzero().squeeze(1)

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    # --- Lightning ------------------------------------------------------------------------------
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.moments = {}
        self.skipped_grad_calls = 0
        self.attach(pl_module.model)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self.begin_batch(pl_module.loader_keys[dataloader_idx], batch.get("attention_mask"))

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.end_batch()

    # --- outside Lightning (benchmarks, tests): attach(), then begin_batch / forward / end_batch ------
    def begin_batch(self, key: str, attention_mask: torch.Tensor | None) -> None:
        """Forwards until `end_batch` count under `key`; language-model padding is read from the mask."""
        if not self.mask_padding:
            attention_mask = None
        self._key, self._mask = key, attention_mask
        # token rows, found once per batch: an index_select per module is 4x faster than a boolean index
        self._rows = None if attention_mask is None else attention_mask.reshape(-1).nonzero().squeeze(1)

    def end_batch(self) -> None:
        self._key, self._mask, self._rows, self._patches, self._patch_rows = None, None, None, None, None

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.detach()
        self.moments = self._all_reduce(trainer, pl_module)

    def on_exception(self, trainer, pl_module, exception) -> None:
        self.detach()

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self.detach()

    def _all_reduce(self, trainer: L.Trainer, pl_module) -> dict[str, dict[str, Moments]]:
        """One SUM all-reduce of every statistic; a (key, module) a rank never saw counts as zeros."""
        sizes = {}
        for name, mod in dict(pl_module.model.named_modules()).items():
            if name in self.towers:
                w = mod.weight
                sizes[name] = w.shape[1] if self.neuron == "input" else w.shape[0]
        device = pl_module.device
        full = {k: {n: self.moments.get(k, {}).get(n) or Moments.zeros(sizes[n], device) for n in self.towers}
                for k in pl_module.loader_keys}
        summed = iter(sum_over_ranks(trainer, [getattr(m, f).to(device) for k in full for m in full[k].values()
                                               for f in FIELDS]))
        return {k: {n: Moments(*(next(summed).cpu() for _ in FIELDS)) for n in full[k]} for k in full}
