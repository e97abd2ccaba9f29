"""Does this machine and this code teach a given vanilla model again? Teach (or read from --cache) the vanilla
model of a config on N torch threads and count the tensors bit-identical to a reference model's.

Why: a results page is read on the vanilla models it was made from; on CPU the taught weights depend on the
processor, the libraries and the thread count (unlearn/provenance.py), so "today's code still makes that
page's models" is a claim to check, not to assume.

Run: `python -m bench.same_weights REFERENCE_DIR --cache DIR [--threads 1] [OVERRIDE ...]` (a sweep's
workers teach on one thread, `make run` on torch's default).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def same_tensors(a_dir: Path, b_dir: Path) -> tuple[int, int]:
    """(tensors bit-identical, tensors in a) between two saved models' safetensors."""
    import torch
    from safetensors.torch import load_file

    a, b = ({k: v for f in sorted(d.glob("*.safetensors")) for k, v in load_file(f).items()} for d in (a_dir, b_dir))
    return sum(k in b and torch.equal(a[k], b[k]) for k in a), len(a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("reference", help="a saved model directory to compare with")
    parser.add_argument("--cache", required=True, help="cache dir: the vanilla model is read from it or taught into it")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the config whose vanilla model is taught")
    # intermixed: overrides after the options too, as the docstring writes them (parse_args takes the positionals
    # at their first run, REFERENCE_DIR alone, and refused every override after --cache)
    args = parser.parse_intermixed_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from hydra.utils import instantiate

    from unlearn.config import compose_config
    from unlearn.pipeline import ensure_vanilla
    from unlearn.runtime import quiet_libraries

    quiet_libraries()
    cache = Path(args.cache).resolve()
    cfg = compose_config(["logger=none", *args.overrides], cache / "same_weights_run", cache)
    start = time.perf_counter()
    path = Path(ensure_vanilla(cfg, instantiate(cfg.data.benchmark)))
    same, total = same_tensors(path, Path(args.reference))
    print(f"{path} ({time.perf_counter() - start:.0f} s on {torch.get_num_threads()} thread(s)): {same} of {total} "
          f"tensors bit-identical to {args.reference}")


if __name__ == "__main__":
    main()
