"""Run a gradient baseline (one epoch, SGD) on N CPU processes; rank 0 saves the weights.

Used by tests/test_ddp.py: one process with the global batch and two processes with half of it each must end
at the same weights, under both step schedules (method.schedule). Lightning's `ddp` launcher re-runs this
script for the other ranks.
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402

from unlearn.config import compose_config  # noqa: E402
from unlearn.data.benchmark import Benchmark  # noqa: E402
from unlearn.data.mllmu_mini import MiniSpec, load_or_build  # noqa: E402
from unlearn.methods.gradient import run  # noqa: E402
from unlearn.models.tiny_llava import TinyLlavaSpec, build_tiny_llava  # noqa: E402
from unlearn.pipeline import RunContext  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, required=True)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--method", default="grad_diff")
    ap.add_argument("--schedule", default="sequential")
    ap.add_argument("--global-batch", type=int, default=6)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.global_batch % args.devices:
        raise SystemExit(f"--global-batch {args.global_batch} is not a multiple of --devices {args.devices}")
    splits = load_or_build(MiniSpec(num_people=12, num_untouched=4, seed=0, train_variants=2), args.cache)
    bench = Benchmark(splits, "forget_15")  # 38 forget and 190 retain sequences: even, so no rank pads its shard
    model, proc = build_tiny_llava(TinyLlavaSpec())
    out_dir = Path(args.out).parent / f"run_{args.schedule}_{args.devices}"
    cfg = compose_config(["debug=fast", f"method={args.method}", f"method.schedule={args.schedule}",
                          "trainer=" + ("ddp_sim" if args.devices > 1 else "cpu"), f"trainer.devices={args.devices}",
                          f"method.batch_size={args.global_batch // args.devices}", "method.epochs=1",
                          "method.optimizer._target_=torch.optim.SGD", "method.optimizer.lr=0.05",
                          "~method.optimizer.weight_decay"], out_dir, args.cache)
    ctx = RunContext(cfg, bench, model, proc, out_dir)
    run(ctx)
    if not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0:
        torch.save({"weights": {n: p.detach().clone() for n, p in ctx.model.named_parameters()},
                    "start": {n: p.detach().clone() for n, p in build_tiny_llava(TinyLlavaSpec())[0].named_parameters()}},
                   args.out)


if __name__ == "__main__":
    main()
