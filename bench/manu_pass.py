"""MANU's costs, measured side by side in one process on the embedded default.

1. The statistics pass (hooks on every MLP) against a plain no-grad forward over the same batches,
   interleaved (A B A B ...) so drift hits both; the median ratio is reported.
2. The statistics state at 1x and 10x data: streaming moments must not grow with the data.
3. MANU's whole method (statistics + scores + pruning, through Lightning) against one epoch of GA, of NPO
   and of MMUnlearner (mask included) on the same forget data.
4. Peak resident memory of a statistics pass over 1x and 10x the data, each in a fresh process.

Run: `.venv/bin/python -m bench.manu_pass` (uses the cached vanilla model when present, else a fresh one).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import torch
from torch.utils.data import ConcatDataset, DataLoader

from callbacks.activation_stats import ActivationStatistics
from callbacks.neuron_pruning import NeuronPruning
from unlearn.config import compose_config
from unlearn.data.benchmark import Benchmark
from unlearn.data.collate import collate
from unlearn.data.mllmu_mini import MiniSpec, load_or_build
from unlearn.eval.scoring import model_inputs
from unlearn.methods.gradient import GradientUnlearning, paired_loader
from unlearn.methods.manu import ActivationPass, statistics_datasets
from unlearn.models.loading import load_model
from unlearn.models.tiny_llava import TinyLlavaSpec, build_tiny_llava
from unlearn.pipeline import vanilla_path
from unlearn.runtime import quiet_libraries

def _default_cfg(cache: Path, *overrides: str):
    return compose_config(["logger=none", *overrides], cache / "bench_tmp", cache)


def _patterns(cache: Path) -> dict[str, str]:
    return dict(_default_cfg(cache).model.mlp_modules)


def _model(cache: Path):
    """The vanilla model of the default config when cached (`make run` builds it), else a fresh one."""
    path = vanilla_path(_default_cfg(cache))
    if path.exists():
        return (*load_model(path), str(path))
    return (*build_tiny_llava(TinyLlavaSpec()), "fresh init (no cached vanilla model of the default config)")


def _batches(datasets, pad, batch_size):
    out = []
    for key, ds in datasets.items():
        for b in DataLoader(ds, batch_size=batch_size, collate_fn=lambda x: collate(x, pad)):
            out.append((key, b))
    return out


@torch.no_grad()
def _plain(model, batches):
    for _, b in batches:
        model(**model_inputs(b, "cpu"))


@torch.no_grad()
def _with_stats(model, batches, stats):
    for key, b in batches:
        stats.begin_batch(key, b["attention_mask"])
        model(**model_inputs(b, "cpu"))
    stats.end_batch()


def _state_bytes(stats) -> int:
    return sum(t.numel() * t.element_size() for per in stats.moments.values() for m in per.values()
               for t in m.to_dict().values())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default=os.environ.get("UNLEARN_CACHE", ".cache"),
                    help="cache dir (default: $UNLEARN_CACHE, else .cache, as train.py)")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--memory-probe", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    quiet_libraries()
    if args.memory_probe:
        return memory_probe(args.memory_probe, Path(args.cache), args.batch_size)
    torch.manual_seed(0)
    cache = Path(args.cache)
    bench = Benchmark(load_or_build(MiniSpec(), cache), "forget_10", "mllmu_mini")
    model, proc, source = _model(cache)
    model.eval()
    ctx = SimpleNamespace(benchmark=bench, processor=proc)
    datasets = statistics_datasets(ctx)
    pad = proc.tokenizer.pad_token_id
    batches = _batches(datasets, pad, args.batch_size)
    tokens = sum(int(b["attention_mask"].sum()) for _, b in batches)
    print(f"model: {source}\nstatistics data: {sum(len(d) for d in datasets.values())} sequences, "
          f"{tokens} tokens, {len(batches)} batches of {args.batch_size}; torch threads {torch.get_num_threads()}")

    # 1. statistics pass vs plain forward, interleaved
    stats = ActivationStatistics(_patterns(cache), tau=0.1)
    _plain(model, batches[:3])  # warm-up
    plain_t, stats_t = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        _plain(model, batches)
        plain_t.append(time.perf_counter() - t)
        stats.moments = {}
        stats.attach(model)
        t = time.perf_counter()
        _with_stats(model, batches, stats)
        stats_t.append(time.perf_counter() - t)
        stats.detach()
    ratios = [s / p for s, p in zip(stats_t, plain_t)]
    print(f"\n[1] plain forward {statistics.median(plain_t):.3f} s, statistics pass "
          f"{statistics.median(stats_t):.3f} s: ratio {statistics.median(ratios):.3f}x (median of "
          f"{args.repeats}; min {min(ratios):.3f}x, max {max(ratios):.3f}x)")

    # 2. state size at 1x and 10x data
    one_x = _state_bytes(stats)
    stats.moments = {}
    stats.attach(model)
    _with_stats(model, batches * 10, stats)
    stats.detach()
    print(f"[2] statistics state: {one_x} bytes at 1x data, {_state_bytes(stats)} bytes at 10x data "
          f"({tokens} vs {tokens * 10} tokens)")

    # 3. MANU (Lightning, end to end on the model) vs one epoch of GA on the same forget data
    trainer_kw = dict(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False)
    manu_model, _, _ = _model(cache)
    stats = ActivationStatistics(_patterns(cache), tau=0.1)
    t = time.perf_counter()
    L.Trainer(callbacks=[stats, NeuronPruning(stats, alpha=2.0)], use_distributed_sampler=False,
              **trainer_kw).validate(ActivationPass(manu_model, datasets, args.batch_size, pad), verbose=False)
    manu_s = time.perf_counter() - t
    ga_model, _, _ = _model(cache)
    ga_ctx = SimpleNamespace(benchmark=bench, processor=proc)
    loader = paired_loader(ga_ctx, "both", 16)
    module = GradientUnlearning(ga_model, "ga", lambda p: torch.optim.AdamW(p, lr=5e-4))
    t = time.perf_counter()
    L.Trainer(max_epochs=1, **trainer_kw).fit(module, loader)
    ga_s = time.perf_counter() - t
    npo_model, _, _ = _model(cache)
    module = GradientUnlearning(npo_model, "npo", lambda p: torch.optim.AdamW(p, lr=5e-4))
    t = time.perf_counter()
    L.Trainer(max_epochs=1, **trainer_kw).fit(module, loader)
    npo_s = time.perf_counter() - t
    mmu_s = _mmunlearner_epoch(cache, bench, trainer_kw)
    n_forget = len(ConcatDataset([d for k, d in datasets.items() if k.startswith("forget")]))
    print(f"[3] MANU whole method {manu_s:.2f} s (statistics over forget+retain, scores, pruning); one epoch over "
          f"the {n_forget} forget sequences (both forms, batch 16): GA {ga_s:.2f} s ({manu_s / ga_s:.2f}x), "
          f"NPO {npo_s:.2f} s ({manu_s / npo_s:.2f}x); MMUnlearner (Fisher mask + 1 epoch with retain steps) "
          f"{mmu_s:.2f} s ({manu_s / mmu_s:.2f}x)")
    peaks = {k: _peak_rss(k, args) for k in (1, 10)}
    print(f"[4] peak RSS of a statistics pass: {peaks[1] / 2**20:.0f} MiB at 1x, {peaks[10] / 2**20:.0f} MiB at 10x "
          f"the data (fresh process each; model and data loading included)")


def _mmunlearner_epoch(cache: Path, bench, trainer_kw) -> float:
    from unlearn.methods.mmunlearner import run
    from unlearn.pipeline import RunContext

    cfg = _default_cfg(cache, "method=mmunlearner", "mmunlearner.epochs=1")
    model, proc, _ = _model(cache)
    ctx = RunContext(cfg, bench, model, proc, cache / "bench_tmp")
    t = time.perf_counter()
    run(ctx)
    return time.perf_counter() - t


def _peak_rss(times: int, args) -> int:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "bench.manu_pass", "--cache", args.cache, "--memory-probe",
                          str(times)], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def memory_probe(times: int, cache: Path, batch_size: int) -> None:
    """Run one statistics pass over `times` x the data; print the peak RSS in bytes (Linux: ru_maxrss KiB)."""
    import resource

    bench = Benchmark(load_or_build(MiniSpec(), cache), "forget_10", "mllmu_mini")
    model, proc, _ = _model(cache)
    model.eval()
    datasets = statistics_datasets(SimpleNamespace(benchmark=bench, processor=proc))
    batches = _batches(datasets, proc.tokenizer.pad_token_id, batch_size)
    stats = ActivationStatistics(_patterns(cache), tau=0.1)
    stats.attach(model)
    for _ in range(times):
        _with_stats(model, batches, stats)
    stats.detach()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


if __name__ == "__main__":
    main()
