"""One line per train.py run of bench/gpu_checks.sh: forget and retain MC before -> after in each modality, and the
largest fraction of trained weights a step could not move (callbacks/lost_updates.py), so a device call's reply
holds the comparison between presets (trainer=gpu against trainer=fsdp, say) without fetching the run directories.
`python -m bench.gpu_runs_table RUNS_DIR`."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def row(run: Path) -> str:
    path = run / "metrics.json"
    if not path.is_file():
        return f"{run.name:<18} no metrics.json"
    summary = json.loads(path.read_text())
    m = summary.get("metrics", {})
    cells = []
    for split in ("forget", "retain"):
        for mod, short in (("multimodal", "mm"), ("text", "txt")):
            b, a = m.get(f"before/{split}/{mod}/mc_acc"), m.get(f"after/{split}/{mod}/mc_acc")
            if a is not None:
                cells.append(f"{split} {short} {'?' if b is None else f'{b:.2f}'}->{a:.2f}")
    lost = summary.get("artifacts", {}).get("lost_steps") or []
    worst = max(lost, key=lambda r: r["fraction"], default=None)
    said = f" | lost steps {worst['fraction']:.0%} ({worst['stage']}, {'/'.join(worst['dtypes'])})" if worst else ""
    return f"{run.name:<18} " + ", ".join(cells) + said


def main(argv: list[str]) -> None:
    for run in sorted(p for p in Path(argv[0]).iterdir() if p.is_dir()):
        print(row(run))


if __name__ == "__main__":
    main(sys.argv[1:])
