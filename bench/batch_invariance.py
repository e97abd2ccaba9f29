"""Does the evaluation's answer depend on which items share its batch? Batched (padded) against one-by-one.

Why: the evaluation pads items into batches (left for greedy replies, right for likelihoods), and a batch's
composition differs with `eval.batch_size` and with the number of processes; MLLMU-Bench's eval.py generates
one item at a time. This counts, on a tiny LLaVA (random weights, so many near-ties: an upper bound for a
taught model), how many greedy replies change and how far answer log-probabilities move, in float32 and in
bfloat16 (`--dtypes`: float16 too, the dtype MLLMU-Bench's eval.py and the official presets evaluate in;
`--device cuda`: a GPU's kernels, bench/gpu_checks.sh); `--model DIR` reads a taught embedded model instead (e.g.
the vanilla model in .cache/vanilla/) and its benchmark's evaluation items.

Run: `.venv/bin/python -m bench.batch_invariance [--items 96] [--seed 0] [--model DIR] [--dtypes float32 float16]
[--device cuda]`
"""

from __future__ import annotations

import argparse
import tempfile

import torch

from unlearn.data.benchmark import Benchmark
from unlearn.data.collate import collate, qa_example
from unlearn.data.mllmu_mini import MiniSpec, load_or_build
from unlearn.eval.items import flatten
from unlearn.eval.protocol import EmbeddedPrompts
from unlearn.eval.scoring import answer_logprobs, greedy_answers
from unlearn.models.tiny_llava import TinyLlavaSpec, build_tiny_llava


def compare(model, proc, items, pad: int) -> tuple[int, float]:
    """(replies that differ, max |log-prob difference|) between one padded batch and one item at a time."""
    prompts = EmbeddedPrompts(12)
    stop = prompts.stop(model, proc)
    gen = [prompts.example(proc, it) for it in items]
    limits = [prompts.limit(it) for it in items]
    batched = greedy_answers(model, proc, collate(gen, pad, padding_side="left"), limits, stop)
    single = [greedy_answers(model, proc, collate([e], pad, padding_side="left"), [n], stop)[0]
              for e, n in zip(gen, limits)]
    qa = [qa_example(proc, [(it.question, it.answer)], it.pixel_values) for it in items]
    together = answer_logprobs(model, collate(qa, pad)).float()
    alone = torch.cat([answer_logprobs(model, collate([e], pad)).float() for e in qa])
    return sum(a != b for a, b in zip(batched, single)), float((together - alone).abs().max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=96)
    ap.add_argument("--seed", type=int, default=0, help="the tiny model's init seed")
    ap.add_argument("--model", help="a taught embedded model's directory (default: a random tiny model)")
    ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"],
                    choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(1)
    spec = MiniSpec(image_size=32) if args.model else MiniSpec(num_people=12, num_untouched=4, seed=0,
                                                                 train_variants=2)
    with tempfile.TemporaryDirectory() as tmp:
        splits = load_or_build(spec, tmp)
    bench = Benchmark(splits, "forget_10", name="mllmu_mini")
    if args.model:
        from unlearn.models.loading import load_model

        model, proc = load_model(args.model, "float32", key="--model")
    else:
        model, proc = build_tiny_llava(TinyLlavaSpec(init_seed=args.seed))
    model.eval().to(args.device)
    items = [it for s in ("forget", "retain") for it in flatten(s, bench.eval[s], proc.pixel_values)
             if it.task in ("gen", "cloze", "mc")][:args.items]
    pad = proc.tokenizer.pad_token_id
    print(f"{len(items)} items on {args.device}, batched against one at a time (greedy replies: left padding; "
          "answer log-probs: right padding)")
    for dtype in (getattr(torch, d) for d in args.dtypes):
        differ, gap = compare(model.to(dtype), proc, items, pad)
        print(f"{str(dtype).removeprefix('torch.'):>9}: {differ} of {len(items)} replies differ, "
              f"max |log-prob difference| {gap:.2e}")


if __name__ == "__main__":
    main()
