"""What the multi-process test scripts share: the repository on sys.path, no W&B, one thread per process, the
--devices / --cache / --out arguments, the small benchmark (forget_15) and a fresh tiny LLaVA.

The scripts run as `python tests/scripts/<name>.py`, so this folder is on sys.path and `import ddp_script` comes
first; Lightning's ddp launcher re-runs the same command for the other ranks.
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "disabled")
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def finish() -> None:
    """The end of a script's every rank: the ranks meet, the process group is destroyed, and the process exits
    without the interpreter's teardown. At that teardown gloo's threads aborted one process in about 1 of 40 runs
    ("terminate called without an active exception", SIGABRT after every check had passed: fsdp_whole.py in the
    thirtieth session, lost_steps.py in the thirty-first). Called only after `main` returned, so an error still
    fails the script."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def setup(add_arguments=None, global_batch: bool = False, argv=None):
    """(args, benchmark, model, processor). `global_batch`: a --global-batch (default 6) split evenly over
    --devices, so one process and W take the same steps. `argv`: the arguments, where not sys.argv's (a script run
    by in_one_launch.py)."""
    import torch

    from unlearn.data.benchmark import Benchmark
    from unlearn.data.mllmu_mini import MiniSpec, load_or_build
    from unlearn.models.tiny_llava import TinyLlavaSpec, build_tiny_llava

    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, required=True)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--out", required=True)
    if global_batch:
        ap.add_argument("--global-batch", type=int, default=6)
    if add_arguments is not None:
        add_arguments(ap)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if global_batch and args.global_batch % args.devices:
        raise SystemExit(f"--global-batch {args.global_batch} is not a multiple of --devices {args.devices}")
    splits = load_or_build(MiniSpec(num_people=12, num_untouched=4, seed=0, train_variants=2), args.cache)
    model, proc = build_tiny_llava(TinyLlavaSpec())
    return args, Benchmark(splits, "forget_15"), model, proc


def trainer_kwargs(devices: int) -> dict:
    """A plain CPU Trainer's arguments, DDP (gloo) for more than one process."""
    kw = dict(accelerator="cpu", devices=devices, logger=False, enable_progress_bar=False,
              enable_model_summary=False, use_distributed_sampler=False)
    if devices > 1:
        kw["strategy"] = "ddp_find_unused_parameters_true"
    return kw


def fit_one_step(devices: int):
    """A one-parameter Lightning fit of one step on `devices` CPU processes (DDP, gloo): a Trainer that makes or
    finds the process group, for the scripts that test the decisions around it. Returns the Trainer."""
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            return self.w(batch[0]).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = L.Trainer(accelerator="cpu", devices=devices, strategy="ddp", max_steps=1, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    trainer.fit(Tiny(), DataLoader(TensorDataset(torch.ones(4, 2)), batch_size=2))
    return trainer


def is_rank_zero() -> bool:
    import torch.distributed as dist

    return not dist.is_initialized() or dist.get_rank() == 0


def logged_losses():
    """A callback that keeps every training step's logged `unlearn/*` values (synced over ranks where the module
    logs with sync_dist) as floats, in `.steps`."""
    import lightning as L

    class LoggedLosses(L.Callback):
        def __init__(self):
            self.steps = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.steps.append({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("unlearn/")})

    return LoggedLosses()
