"""MANU's official statistics pass + selection on N CPU processes; rank 0 saves statistics and masks.

Used by tests/test_manu_official.py: one process and two (gloo) must give the same statistics and masks.
"""

import argparse
import os
import sys
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("WANDB_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import lightning as L  # noqa: E402
import torch  # noqa: E402

from callbacks.neuron_pruning import NeuronPruning  # noqa: E402
from callbacks.official_stats import OfficialActivationStatistics  # noqa: E402
from unlearn.config import compose_config  # noqa: E402
from unlearn.data.benchmark import Benchmark  # noqa: E402
from unlearn.data.mllmu_mini import MiniSpec, load_or_build  # noqa: E402
from unlearn.methods.manu import ActivationPass, official_plans, statistics_datasets  # noqa: E402
from unlearn.models.tiny_llava import TinyLlavaSpec, build_tiny_llava  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, required=True)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    splits = load_or_build(MiniSpec(num_people=12, num_untouched=4, seed=0, train_variants=2), args.cache)
    model, proc = build_tiny_llava(TinyLlavaSpec())
    model.eval()
    ctx = SimpleNamespace(benchmark=Benchmark(splits, "forget_15"), processor=proc)
    kw = dict(accelerator="cpu", devices=args.devices, logger=False, enable_progress_bar=False,
              enable_model_summary=False, use_distributed_sampler=False)
    if args.devices > 1:
        kw["strategy"] = "ddp_find_unused_parameters_true"
    patterns = dict(compose_config([], Path(args.out).parent, args.cache).model.manu_official_modules)
    stats = OfficialActivationStatistics(patterns, pooled=True)
    pruning = NeuronPruning(stats, alpha=10.0, apply_last=3)
    datasets = statistics_datasets(ctx)
    plans = official_plans(datasets, 3, chunk_size=2, seed=0)  # several chunks, batches split across ranks
    L.Trainer(callbacks=[stats, pruning], **kw).validate(
        ActivationPass(model, datasets, 3, proc.tokenizer.pad_token_id, plans), verbose=False)
    if not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0:
        torch.save({"stats": stats.stats, "masks": pruning.masks, "chunks": stats.num_chunks}, args.out)


if __name__ == "__main__":
    main()
