"""Peak memory of the shared-prompt path with and without `eval.shared_cache_gb`, side by side.

Why: the shared path copies each prompt's key/value cache to every answer row, so one pass over an MC batch
of 64 items with 4 options holds 256 prompt caches: about 80 GB behind LLaVA-1.5-7B's 576 image tokens in
bf16 (0.5 MB per token). Under a budget the answers run in passes that hold at most that many GB of copies.
The model here is a LLaVA of small width whose prompts are as long as a real LLaVA's, so the copied caches
dominate the memory as they do at 7B, scaled down; a 7B model itself is left to arithmetic (no GPU here).

Run: `.venv/bin/python -m bench.shared_cache_memory [--prompts 64] [--options 4] [--length 600] [--width 256]
[--layers 8] [--budgets none,0.5,0.1]`. Each variant runs in a fresh process; the figure is the rise of its
peak resident memory over what it held before the call (`ru_maxrss`), and the call's wall time.
"""

from __future__ import annotations

import argparse

from bench.scoring_memory import run_child

CHILD = r"""
import json, resource, sys, time, torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration
from unlearn.eval.shared_prompt import answers_after_prompts
a = json.loads(sys.argv[1])
torch.manual_seed(0)
torch.set_num_threads(a["threads"])
text = LlamaConfig(vocab_size=1000, hidden_size=a["width"], intermediate_size=2 * a["width"],
                   num_hidden_layers=a["layers"], num_attention_heads=4, num_key_value_heads=4,
                   max_position_embeddings=a["length"] + 64, pad_token_id=0)
vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                          image_size=32, patch_size=16)
model = LlavaForConditionalGeneration(LlavaConfig(vision_config=vision, text_config=text, image_token_index=5,
                                                  image_seq_length=4)).eval()
ids = torch.randint(10, 1000, (a["prompts"], a["length"]))
prompts = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
gen = torch.Generator().manual_seed(1)
answers = [torch.randint(10, 1000, (int(n),), generator=gen).tolist()
           for n in torch.randint(1, 6, (a["prompts"] * a["options"],), generator=gen)]
counts = [a["options"]] * a["prompts"]
with torch.no_grad():
    warm = {k: v[:1, :8] for k, v in prompts.items()}
    answers_after_prompts(model, warm, answers[:1], [1], 0)  # warm-up on one short prompt
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    out = answers_after_prompts(model, prompts, answers, counts, 0, cache_gb=a["budget"])
    took = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rise_mb": (peak - before) / 1024, "seconds": took, "values": out.tolist()}))
"""


def measure(args: argparse.Namespace, budget: float | None) -> dict:
    return run_child(CHILD, {**vars(args), "budget": budget})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--options", type=int, default=4, help="answers after each prompt")
    ap.add_argument("--length", type=int, default=600, help="prompt tokens (a real LLaVA: 576 image tokens + text)")
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--budgets", default="none,0.5,0.1", help="eval.shared_cache_gb values, `none`: no bound")
    args = ap.parse_args()
    budgets = [None if b == "none" else float(b) for b in args.budgets.split(",")]
    args.budgets = None
    per_row_mb = args.layers * 2 * args.width * 4 * args.length / 1e6  # float32 keys and values of one prompt
    rows = args.prompts * args.options
    print(f"{args.prompts} prompts of {args.length} tokens, {args.options} answers each ({rows} rows); a LLaVA of "
          f"width {args.width}, {args.layers} layers, float32; one prompt's cache {per_row_mb:.1f} MB, all rows' "
          f"copies {rows * per_row_mb / 1e3:.2f} GB")
    results = [(b, measure(args, b)) for b in budgets]
    base = results[0][1]
    for b, r in results:
        name = "no bound" if b is None else f"shared_cache_gb={b:g}"
        same = r["values"] == base["values"]
        print(f"  {name:<22} peak rise {r['rise_mb']:7.0f} MB   {r['seconds']:6.2f} s   "
              f"{r['rise_mb'] / max(base['rise_mb'], 1):.2f}x the memory, {r['seconds'] / base['seconds']:.2f}x the "
              f"time of the first; values equal to it: {same}")


if __name__ == "__main__":
    main()
