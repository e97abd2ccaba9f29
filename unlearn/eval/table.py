"""The before/after table printed at the end of a run."""

from __future__ import annotations

SPLITS = ("forget", "retain", "test", "untouched")
MODALITIES = ("multimodal", "text")
METRICS = ("mc_acc", "rougeL", "cloze_acc")
SECOND_MC = ("mc_acc_generate", "mc_acc_letter")  # eval.mc_also: a column only when it ran
# likelihood metrics (unlearn/eval/truth_ratio.py): columns only where the data has perturbed answers, and
# forget quality only with eval.reference_run
LIKELIHOOD = ("rougeL_recall", "prob", "prob_rel", "truth_ratio", "forget_quality")


def number(v: float) -> str:
    """Three decimals; a small non-zero value (forget quality is a p-value, often 1e-6) in e-notation."""
    return f"{v:.1e}" if 0 < abs(v) < 5e-4 else f"{v:.3f}"


def before_after_table(metrics: dict[str, float], stages: tuple[str, str] = ("before", "after")) -> str:
    """Markdown: one row per split x modality, one column per metric as `before -> after`."""
    a, b = stages
    present = {k.rsplit("/", 1)[-1] for k in metrics}
    columns = (METRICS[:1] + tuple(m for m in SECOND_MC if m in present) + METRICS[1:]
               + tuple(m for m in LIKELIHOOD if m in present))
    lines = ["| split | modality | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    for split in SPLITS:
        for mod in MODALITIES:
            cells = []
            for m in columns:
                x, y = metrics.get(f"{a}/{split}/{mod}/{m}"), metrics.get(f"{b}/{split}/{mod}/{m}")
                if x is None and y is None:
                    cells.append("-")
                elif x is None or y is None:
                    cells.append(number(x if y is None else y))
                else:
                    cells.append(f"{number(x)} -> {number(y)}")
            if any(c != "-" for c in cells):
                lines.append(f"| {split} | {mod} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
