"""Scoring answers after one pass over their shared prompt against whole rows, side by side.

Why: `eval.share_prompt` (unlearn/eval/shared_prompt.py) changes how the evaluation computes every MC and
truth-ratio log-probability. This times both paths on the same items, interleaved (this shared machine's
speed drifts), and counts what moves: MC choices that differ, and the largest log-probability difference.

Run: `.venv/bin/python -m bench.shared_prompt --model DIR` (a taught embedded model, e.g. the vanilla model
in .cache/vanilla/; default: a random tiny LLaVA) [--repeat 5] [--threads N] [--dtype bfloat16] (the real
models' precision, in which any change of batch shape moves log-probabilities more: see bench/batch_invariance.py).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from unlearn.data.benchmark import Benchmark
from unlearn.data.mllmu_mini import MiniSpec, load_or_build
from unlearn.eval.items import flatten
from unlearn.eval.scoring import answer_set_logprobs, truth_ratio_answers
from unlearn.models.tiny_llava import TinyLlavaSpec, build_tiny_llava


def asked(items, task: str) -> tuple[list, list]:
    """(prompts, answers) as the evaluation scores them: MC options by likelihood, truth-ratio answer sets."""
    chosen = [it for it in items if it.task == task]
    if task == "mc":
        return [(it.question, it.pixel_values) for it in chosen], [list(it.options) for it in chosen]
    return [(it.question, it.pixel_values) for it in chosen], [truth_ratio_answers(it) for it in chosen]


def score(model, proc, prompts, answers, batch: int, share: bool, per_token: bool) -> list[list[float]]:
    out = []
    for i in range(0, len(prompts), batch):
        out += answer_set_logprobs(model, proc, prompts[i:i + batch], answers[i:i + batch], per_token, share)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="a taught embedded model's directory (default: a random tiny LLaVA)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        splits = load_or_build(MiniSpec(image_size=32), tmp)
    bench = Benchmark(splits, "forget_10", name="mllmu_mini")
    if args.model:
        from unlearn.models.loading import load_model

        model, proc = load_model(args.model, "float32", key="--model")
    else:
        model, proc = build_tiny_llava(TinyLlavaSpec())
    model.to(getattr(torch, args.dtype)).eval()
    items = [it for s in ("forget", "retain", "test", "untouched") for it in flatten(s, bench.eval[s], proc.pixel_values)]
    # the evaluation's batches: eval.batch_size items for MC, a quarter of it for truth-ratio sets
    for task, batch, per_token in (("mc", 64, False), ("prob", 16, True)):
        prompts, answers = asked(items, task)
        times: dict[bool, list[float]] = {True: [], False: []}
        results = {}
        for _ in range(args.repeat):
            for share in (False, True):
                start = time.perf_counter()
                results[share] = score(model, proc, prompts, answers, batch, share, per_token)
                times[share].append(time.perf_counter() - start)
        whole, shared = (torch.tensor([x for row in results[s] for x in row]) for s in (False, True))
        w, s = statistics.median(times[False]), statistics.median(times[True])
        line = (f"{task}: {len(prompts)} prompts, {len(whole)} answers; whole rows {w:.3f} s, shared prompt "
                f"{s:.3f} s (median of {args.repeat}): {w / s:.2f}x; max |log-prob difference| "
                f"{(whole - shared).abs().max():.1e}")
        if task == "mc":  # the option each item's likelihood picks
            line += "; choices that differ: " + str(sum(
                max(range(len(a)), key=a.__getitem__) != max(range(len(b)), key=b.__getitem__)
                for a, b in zip(results[False], results[True])))
        print(line)


if __name__ == "__main__":
    main()
