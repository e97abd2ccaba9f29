"""MMUnlearner's picture: which tensors the saliency mask opens, and how much of each."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from unlearn.io import save_figure  # noqa: E402


def save_mask_sparsity(report: dict, path: Path) -> Path:
    """Horizontal bars: selected fraction per parameter tensor (from `saliency.mask_report`)."""
    names = list(report["tensors"])
    fractions = [report["tensors"][n]["fraction"] for n in names]
    labels = [n.replace("model.", "").replace("language_model.", "lm.").replace("vision_tower.", "vt.")
              for n in names]
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.16 * len(names))))
    ax.barh(range(len(names)), fractions, color=["tab:orange" if "vt." in lb or "projector" in lb else "tab:blue"
                                                 for lb in labels])
    ax.set_yticks(range(len(names)), labels, fontsize=5)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of elements unlearned")
    ax.set_title(f"saliency mask: {100 * report['fraction']:.1f}% of {report['elements']:,} elements", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
