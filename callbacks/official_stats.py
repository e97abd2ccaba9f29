"""The MANU authors' activation statistics (`manu.selection=official`), streamed during the no-grad pass.

Forward hooks on the outputs of every Linear matched by `model.manu_official_modules` (their unit), or forward
pre-hooks on the inputs of those matched by `model.mlp_modules` (`manu.official.unit=intermediate`); per batch,
per-position sums over the batch rows (pooled layers: the rows of every layer of a module type), then
per-chunk sums of the per-position statistics (`unlearn.manu.official`). Vision units count only in the
multimodal passes, language units only in the text-only passes, as the authors' hooks do. At the end of
the pass the per-chunk sums are all-reduced (SUM) across ranks: a batch lives on one rank, so this is the
single-process result. The pass module must provide `batch_chunks[dataloader_idx][batch_idx]` (the chunk
of each of this rank's batches) and `num_chunks[key]`.
"""

from __future__ import annotations

from collections.abc import Mapping

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from callbacks.activation_stats import match_modules
from unlearn.manu.official import OFFICIAL_CLAMP, OFFICIAL_TAU, BatchPositionSums, ChunkedStatistics
from unlearn.manu.choices import OFFICIAL_UNITS
from unlearn.rank_sum import sum_over_ranks


def own_tower(key: str) -> str:
    """The tower a pass key feeds: multimodal passes score vision units, text-only passes language units."""
    return "vision" if key.endswith("/multimodal") else "language"


class OfficialActivationStatistics(Callback):
    """`self.stats[key][unit] = {abs, freq, var, rms}`; `self.units[module]` is the unit a module counts under."""

    def __init__(self, patterns: Mapping[str, str], pooled: bool = True, clamp: float = OFFICIAL_CLAMP,
                 tau: float = OFFICIAL_TAU, unit: str = "output"):
        """unit="output": the hooked Linears' output rows (theirs); "intermediate": the inputs of the matched
        Linears (fc2 / down_proj: the project's unit), to measure the statistics apart from the unit."""
        if unit not in OFFICIAL_UNITS:
            raise ValueError(f"manu.official.unit={unit!r}: expected 'output' or 'intermediate'")
        self.patterns, self.pooled, self.clamp, self.tau = dict(patterns), bool(pooled), float(clamp), float(tau)
        self.neuron = "output" if unit == "output" else "input"  # what prune_neurons zeroes
        self.towers: dict[str, str] = {}
        self.units: dict[str, str] = {}
        self.widths: dict[str, int] = {}
        self.chunked: dict[str, dict[str, ChunkedStatistics]] = {}
        self.stats: dict[str, dict[str, dict[str, torch.Tensor]]] = {}
        self.num_chunks: dict[str, int] = {}
        self._handles: list = []
        self._key: str | None = None
        self._chunk: int | None = None
        self._batch: dict[str, BatchPositionSums] = {}
        self.clamped = 0  # activations clipped to +-clamp on this rank

    def unit_of(self, name: str) -> str:
        return f"{self.towers[name]}:{name.rpartition('.')[2]}" if self.pooled else name

    # --- hooks ----------------------------------------------------------------------------------
    def _record(self, name: str, out: torch.Tensor) -> None:
        if torch.is_grad_enabled() or self._key is None or self.towers[name] != own_tower(self._key):
            return
        if out.dim() != 3:  # e.g. Qwen2-VL's vision blocks see (patches, n): no batch rows per position
            raise ValueError(f"manu.selection=official: {name} gives activations of shape {tuple(out.shape)}; "
                             "their per-position statistics need (rows, positions, neurons)")
        self._batch.setdefault(self.units[name], BatchPositionSums()).add(out, self.clamp, self.tau)

    def attach(self, model: torch.nn.Module) -> None:
        self.detach()
        key = "model.manu_official_modules" if self.neuron == "output" else "model.mlp_modules"
        self.towers = match_modules(model, self.patterns, key)
        modules = dict(model.named_modules())
        for name in self.towers:
            if not isinstance(modules[name], torch.nn.Linear):
                raise ValueError(f"{key} matches {name!r}, which is not a Linear")
        self.units = {n: self.unit_of(n) for n in self.towers}
        for name in self.towers:
            mod = modules[name]
            if self.neuron == "output":
                self.widths[self.units[name]] = mod.out_features
                h = mod.register_forward_hook(lambda m, args, out, name=name: self._record(name, out))
            else:
                self.widths[self.units[name]] = mod.in_features
                h = mod.register_forward_pre_hook(lambda m, args, name=name: self._record(name, args[0]))
            self._handles.append(h)

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def begin_batch(self, key: str, chunk: int) -> None:
        self._key, self._chunk, self._batch = key, int(chunk), {}

    def end_batch(self) -> None:
        if self._key is not None:
            per_key = self.chunked.setdefault(self._key, {})
            for unit, batch in self._batch.items():
                if unit not in per_key:
                    per_key[unit] = ChunkedStatistics(self.num_chunks[self._key], self.widths[unit])
                per_key[unit].add_batch(self._chunk, batch)
                self.clamped += batch.clamped
        self._key, self._chunk, self._batch = None, None, {}

    def finalize(self) -> None:
        """Chunked sums -> final statistics (single process, or after `_all_reduce`)."""
        self.stats = {k: {u: c.final() for u, c in per.items()} for k, per in self.chunked.items()}

    # --- Lightning ------------------------------------------------------------------------------
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.chunked, self.stats, self.clamped = {}, {}, 0
        self.num_chunks = dict(pl_module.num_chunks)
        self.attach(pl_module.model)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self.begin_batch(pl_module.loader_keys[dataloader_idx], pl_module.batch_chunks[dataloader_idx][batch_idx])

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.end_batch()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.detach()
        if trainer.world_size > 1:
            self._all_reduce(trainer, pl_module)
        self.finalize()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self.detach()

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self.detach()

    def _all_reduce(self, trainer: L.Trainer, pl_module) -> None:
        """One SUM all-reduce of every (key, own-tower unit) chunk table; a rank that never saw one adds zeros."""
        device = pl_module.device
        unit_tower = {u: self.towers[m] for m, u in self.units.items()}
        layout = [(k, u) for k in pl_module.loader_keys for u, t in unit_tower.items() if t == own_tower(k)]
        for k, u in layout:
            per = self.chunked.setdefault(k, {})
            if u not in per:
                per[u] = ChunkedStatistics(self.num_chunks[k], self.widths[u])
        tables = [self.chunked[k][u] for k, u in layout]
        summed = iter(sum_over_ranks(trainer, [getattr(c, attr).to(device) for c in tables
                                               for attr in ("sums", "positions")]))
        for c in tables:
            for attr in ("sums", "positions"):
                setattr(c, attr, next(summed).cpu().clone())

