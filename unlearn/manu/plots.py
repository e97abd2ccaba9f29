"""MANU's pictures: where the pruned neurons sit, and how differently the modalities light up layers."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from unlearn.io import save_figure  # noqa: E402


def _layer_label(name: str) -> str:
    parts = name.split(".")
    nums = [p for p in parts if p.isdigit()]
    tower = "vision" if "vision" in name else "language"
    return f"{tower} {nums[-1] if nums else name}"


def save_heatmaps(moments, scores, masks, towers, out_dir: Path) -> list[Path]:
    names = list(scores)
    labels = [_layer_label(n) for n in names]
    out = []

    # 1. pruned fraction and mean score per layer
    frac = np.array([[float(masks[n].float().mean()) for n in names]])
    mean_score = np.array([[float(scores[n].float().mean()) for n in names]])
    fig, axes = plt.subplots(2, 1, figsize=(max(4, len(names) * 0.9), 3.2))
    for ax, data, title in ((axes[0], frac, "pruned fraction"), (axes[1], mean_score, "mean score")):
        im = ax.imshow(data, aspect="auto", cmap="viridis")
        ax.set_yticks([])
        ax.set_xticks(range(len(names)), labels, fontsize=7, rotation=30)
        ax.set_title(title, fontsize=8)
        fig.colorbar(im, ax=ax)
    fig.tight_layout()
    out.append(save_figure(fig, out_dir / "pruned_per_layer.png", dpi=110))

    # 2. mean |activation| per layer for forget people, multimodal vs text-only (the paper's Fig. 2 idea)
    rows = []
    for key in ("forget/multimodal", "forget/text"):
        rows.append([float(moments[key][n].mean_abs.mean()) for n in names])
    fig, ax = plt.subplots(figsize=(max(4, len(names) * 0.9), 2.2))
    im = ax.imshow(np.array(rows), aspect="auto", cmap="magma")
    ax.set_yticks([0, 1], ["multimodal", "text"])
    ax.set_xticks(range(len(names)), labels, fontsize=7, rotation=30)
    ax.set_title("forget set: mean |activation| per layer", fontsize=8)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    out.append(save_figure(fig, out_dir / "activation_by_modality.png", dpi=110))
    return out
