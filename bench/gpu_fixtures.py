"""The local stand-ins the GPU checks (bench/gpu_checks.sh) run the real-model presets on: a tiny MLLMU-Bench
snapshot and tiny LLaVA and Qwen2-VL checkpoints in the real families' formats, written the way the tests write
them (unlearn/data/fixtures.py, unlearn/models/tiny_real.py). Nothing is downloaded.

`python -m bench.gpu_fixtures DIR` writes DIR/mllmu, DIR/llava and DIR/qwen2_vl.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def write(root: Path) -> dict[str, Path]:
    from unlearn.data.fixtures import write_mllmu_bench_fixture
    from unlearn.models.tiny_real import write_tiny_real

    root.mkdir(parents=True, exist_ok=True)
    return {"mllmu": write_mllmu_bench_fixture(root / "mllmu", num_people=6),
            "llava": write_tiny_real("llava", root / "llava"),
            "qwen2_vl": write_tiny_real("qwen2_vl", root / "qwen2_vl")}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    for name, path in write(ap.parse_args().root).items():
        print(f"{name}: {path}")
