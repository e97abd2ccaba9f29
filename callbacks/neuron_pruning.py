"""Turn reduced activation statistics into a neuron mask and apply it, at the end of the stats pass.

Every rank computes the mask from the same all-reduced statistics, so every rank prunes identically;
only rank 0 writes the artifacts (mask as safetensors, per-layer summary JSON, and heatmaps except under
`manu.selection=official`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback

from callbacks.activation_stats import ActivationStatistics
from callbacks.official_stats import OfficialActivationStatistics
from unlearn.io import write_json, write_masks
from unlearn.manu.importance import REFERENCE_WEIGHTS
from unlearn.manu.neuron_scores import neuron_scores
from unlearn.manu.official import official_scores, official_top_k
from unlearn.manu.prune import prune_neurons
from unlearn.manu.selection import select_neurons, summarize

log = logging.getLogger(__name__)


class NeuronPruning(Callback):
    def __init__(self, stats: ActivationStatistics, alpha: float, score: str = "paper",
                 weights: dict | None = None, scope: str = "tower", mode: str = "zero", factor: float = 0.0,
                 out_dir: str | Path | None = None, apply_last: int = 3, seed: int = 0,
                 layers: dict | None = None):
        self.apply_last = int(apply_last)  # official + pooled layers: the last N layers get the pooled masks ...
        # ... or these, per tower (a null tower: its last apply_last layers, as the settings check says)
        self.layers = {t: None if v is None else [int(i) for i in v] for t, v in layers.items()} if layers else None
        self.stats, self.alpha, self.score, self.weights = stats, float(alpha), score, weights
        self.scope, self.mode, self.factor, self.seed = scope, mode, factor, int(seed)  # seed: score=random
        self.out_dir = Path(out_dir) if out_dir else None
        self.scores: dict = {}
        self.masks: dict = {}
        self.summary: dict = {}

    @property
    def official(self) -> bool:
        return isinstance(self.stats, OfficialActivationStatistics)  # manu.selection=official

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.official:  # the authors' scores and threshold rule (unlearn.manu.official)
            weights = {**REFERENCE_WEIGHTS, **self.weights} if self.weights else dict(REFERENCE_WEIGHTS)  # partial: over
            self.scores = official_scores(self.stats.stats, self.stats.units, self.stats.towers, self.stats.pooled,
                                          self.apply_last, weights, self.layers)
            self.masks = official_top_k(self.scores, self.stats.towers, self.alpha)
        else:
            self.scores = neuron_scores(self.stats.moments, self.stats.towers, self.score, self.weights, self.seed)
            self.masks = select_neurons(self.scores, self.stats.towers, self.alpha, self.scope)
        prune_neurons(pl_module.model, self.masks, self.stats.neuron, self.mode, self.factor)
        self.summary = summarize(self.masks, self.stats.towers)
        total = sum(int(m.sum()) for m in self.masks.values())
        towers = ", ".join(f"{t} {c['pruned']} of {c['neurons']}" for t, c in sorted(self.summary["towers"].items()))
        log.info("MANU pruned %d neurons (%s; alpha=%s%%, score=%s, scope=%s)", total, towers, self.alpha, self.score,
                 self.scope)  # per tower: a reader checking both towers were reached read it only in summary.json
        if trainer.is_global_zero and self.out_dir is not None:
            self._write(trainer)

    def _write(self, trainer: L.Trainer) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_masks(self.out_dir / "mask.safetensors", self.masks,
                    {"alpha": str(self.alpha), "score": self.score, "scope": self.scope, "neuron": self.stats.neuron,
                     "selection": "official" if self.official else "project"})
        write_json(self.out_dir / "summary.json", {"alpha": self.alpha, "score": self.score, "scope": self.scope,
                                                   "mode": self.mode, "layers": self.summary})
        if self.official:  # no per-token moments to draw
            return
        from unlearn.manu.plots import save_heatmaps

        images = save_heatmaps(self.stats.moments, self.scores, self.masks, self.stats.towers, self.out_dir)
        log_figures(trainer.loggers, images)


def log_figures(loggers, images) -> None:
    """Each figure under its own key (`manu/<file stem>`): W&B draws a list of images at the first one's size,
    and MANU's figures differ in size."""
    for logger in loggers:
        if hasattr(logger, "log_image"):
            for path in images:
                logger.log_image(key=f"manu/{Path(path).stem}", images=[str(path)])
