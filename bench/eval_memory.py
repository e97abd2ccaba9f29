"""The evaluation's likelihood scoring on a 7B-shaped LLaVA-1.5 with random weights: peak memory and time of
one MC batch, scored three ways side by side in one process.

- shared prompt, every answer in one pass (`eval.shared_cache_gb=null`): each option row holds a copy of its
  prompt's key/value cache, about 0.3 GB in bf16 behind 576 image tokens, 80 GB for 64 items of 4 options;
- shared prompt, in passes under `eval.shared_cache_gb` (default 4);
- whole rows (`eval.share_prompt=false`): no cache, logits at the answer positions only.

Why: the first is arithmetic until a GPU measures it; this is the check a lent GPU runs (about 16 GiB of
weights, then the scoring): `python -m bench.eval_memory --shape 7b --device cuda --dtype bfloat16`. An
out-of-memory is reported as such, not raised. `--shape tiny --device cpu` runs the same code in seconds (the
tests do); peak memory is read on CUDA only. Prints each way's peak memory above the weights, its time, and
how far its log-probabilities lie from the first way that finished.
"""

from __future__ import annotations

import argparse
import time

import torch

from bench.gpu_scale import SHAPES, _sync, build
from unlearn.data.collate import IGNORE
from unlearn.eval.scoring import answer_logprobs
from unlearn.eval.shared_prompt import answers_after_prompts


def mc_batch(config, prompts: int, options: int, text_tokens: int, answer_tokens: int, device: str,
             dtype: torch.dtype, seed: int = 0):
    """Prompts of an image and a question, each followed by `options` answers of `answer_tokens` tokens."""
    g = torch.Generator().manual_seed(seed)
    v = config.vision_config
    n_image = (v.image_size // v.patch_size) ** 2
    vocab = config.text_config.vocab_size - 1  # the last id is the image token
    ids = torch.randint(0, vocab, (prompts, 1 + n_image + text_tokens), generator=g)
    ids[:, 1:1 + n_image] = config.image_token_index
    pixels = torch.randn(prompts, 3, v.image_size, v.image_size, generator=g).to(device, dtype)
    answers = torch.randint(0, vocab, (prompts * options, answer_tokens), generator=g)
    return ids.to(device), pixels, answers.to(device)


def whole_rows(model, ids, pixels, answers, options: int) -> torch.Tensor:
    rows = torch.arange(len(ids), device=ids.device).repeat_interleave(options)
    full = torch.cat([ids.index_select(0, rows), answers], dim=1)
    labels = torch.full_like(full, IGNORE)
    labels[:, ids.shape[1]:] = answers
    return answer_logprobs(model, {"input_ids": full, "attention_mask": torch.ones_like(full),
                                   "pixel_values": pixels.index_select(0, rows), "labels": labels})


def shared(model, ids, pixels, answers, options: int, cache_gb: float | None) -> torch.Tensor:
    prompts = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "pixel_values": pixels}
    return answers_after_prompts(model, prompts, answers.tolist(), [options] * len(ids), pad_id=0,
                                 cache_gb=cache_gb)


def measure(fn, device: str) -> dict:
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    _sync(device)
    start = time.perf_counter()
    try:
        values = fn()
    except torch.OutOfMemoryError:
        return {"oom": True}
    _sync(device)
    took = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated() - base) / 2 ** 30 if cuda else float("nan")
    return {"oom": False, "seconds": took, "peak_gib": peak, "values": values.float().cpu()}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="7b")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--prompts", type=int, default=64, help="MC items in the batch (eval.batch_size)")
    ap.add_argument("--options", type=int, default=4)
    ap.add_argument("--text-tokens", type=int, default=40, help="question tokens after the image")
    ap.add_argument("--answer-tokens", type=int, default=6)
    ap.add_argument("--budget", type=float, default=4.0, help="eval.shared_cache_gb for the second way")
    args = ap.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    model, config = build(args.shape, args.device, dtype)
    ids, pixels, answers = mc_batch(config, args.prompts, args.options, args.text_tokens, args.answer_tokens,
                                    args.device, dtype)
    print(f"{args.shape} LLaVA-1.5 shape, {args.dtype} on {args.device}: {args.prompts} prompts of "
          f"{ids.shape[1]} tokens, {args.options} answers of {args.answer_tokens} tokens each")
    with torch.no_grad():
        shared(model, ids[:1], pixels[:1], answers[:args.options], args.options, None)  # warm-up
    ways = {"shared, one pass": lambda: shared(model, ids, pixels, answers, args.options, None),
            f"shared, shared_cache_gb={args.budget:g}": lambda: shared(model, ids, pixels, answers, args.options,
                                                                       args.budget),
            "whole rows, answer logits": lambda: whole_rows(model, ids, pixels, answers, args.options)}
    results, reference = {}, None
    for name, fn in ways.items():
        r = results[name] = measure(fn, args.device)
        if r["oom"]:
            print(f"  {name:<32} out of memory")
            continue
        reference = r["values"] if reference is None else reference
        r["max_diff"] = float((r["values"] - reference).abs().max())
        print(f"  {name:<32} peak {r['peak_gib']:6.1f} GiB above the weights   {r['seconds']:7.2f} s   "
              f"largest log-probability difference from the first finished: {r['max_diff']:.3g}")
    return results


if __name__ == "__main__":
    main()
