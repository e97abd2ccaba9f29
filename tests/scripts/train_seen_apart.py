"""`train.py` with its arguments, under `torchrun --nproc-per-node 2`, where rank 1 sees the vanilla model cached
and rank 0 does not: a model that another run sharing the cache publishes between the two ranks' looks, or that
one node of a shared filesystem shows before the other. (The model is not there: a rank that read it would stop
on the missing files; one that read a real one would hang in collectives rank 0 never makes.)"""

import os
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("WANDB_MODE", "disabled")

import unlearn.pipeline as pipeline  # noqa: E402

_agreed = pipeline.agreed


def seen_apart(name, decide):
    if name.startswith("vanilla model cached") and os.environ.get("RANK") == "1":
        return _agreed(name, lambda: True)
    return _agreed(name, decide)


pipeline.agreed = seen_apart
sys.argv = [str(ROOT / "train.py"), *sys.argv[1:]]
runpy.run_path(str(ROOT / "train.py"), run_name="__main__")
