"""How far MMUnlearner's saliency mask moves from one process to two, in each Fisher precision.

Why: each process adds its own batches' squared gradients in `mmunlearner.fisher_dtype`, as the authors' one
process does, and the processes' partial sums meet once (unlearn/methods/mmunlearner.py FisherPass), so in half
precision two processes round another sum than one. This runs the mask pass on one process and on two CPU
processes (`trainer=ddp_sim`) from the same weights (`model.path`, the debug-size vanilla model, taught into the
cache first if missing) for each dtype, and prints how many mask elements differ and how many each selects.

`python -m bench.mask_processes [--cache DIR] [--dtypes float32 bfloat16 float16]` (six debug-size runs; a few
minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN = ["debug=fast", "logger=none", "method=mmunlearner", "data.spec.num_people=30", "eval.max_people=1",
       "eval.tasks=[mc]", "eval.before=false", "mmunlearner.epochs=1", "mmunlearner.fisher_batch_size=3"]


def train(args: list[str], env: dict) -> None:
    done = subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"python train.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default=os.environ.get("UNLEARN_CACHE", ".cache"))
    ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16", "float16"])
    args = ap.parse_args(argv)
    from safetensors.torch import load_file

    cache = Path(args.cache).resolve()
    env = {**os.environ, "UNLEARN_CACHE": str(cache), "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train(["debug=fast", "logger=none", "method=ga", "eval.tasks=[mc]", "eval.max_people=1",
               f"hydra.run.dir={tmp / 'teach'}"], env)  # the debug-size vanilla model, taught if missing
        model = json.loads((tmp / "teach" / "metrics.json").read_text())["source_model"]
        for dtype in args.dtypes:
            masks = {}
            for trainer in ("cpu", "ddp_sim"):
                out = tmp / f"{dtype}-{trainer}"
                train([*RUN, f"model.path={model}", f"mmunlearner.fisher_dtype={dtype}", f"trainer={trainer}",
                       f"hydra.run.dir={out}"], env)
                masks[trainer] = load_file(str(out / "mmunlearner" / "mask.safetensors"))
            one, two = masks["cpu"], masks["ddp_sim"]
            total = sum(t.numel() for t in one.values())
            differ = sum(int((one[k] != two[k]).sum()) for k in one)
            a, b = (sum(int(t.sum()) for t in m.values()) for m in (one, two))
            print(f"{dtype}: {differ} of {total} mask elements differ; selected {a} on one process, {b} on two "
                  f"({(b - a) / a:+.2%})")


if __name__ == "__main__":
    main()
