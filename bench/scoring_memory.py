"""Peak memory of whole-row answer scoring, three ways side by side: every position normalised, with a key/value
cache (the code until the thirteenth session); every position's logits in the model's dtype, only the answer
positions normalised, no cache (the thirteenth session); the answer positions' logits alone, no cache
(`unlearn.eval.scoring.answer_logprobs` since the fourteenth: the model's `logits_to_keep` mask).

Why: whole rows are what Qwen2-VL always scores and what `eval.share_prompt=false` scores on every family.
Their float32 logits and log-softmax grow as rows x length x vocab; Qwen2-VL's vocabulary has 152,064 words.
The model here is a LLaVA of tiny width with that vocabulary, so the logits dominate as they do at 7B; the
key/value cache of a real 7B model (LLaVA-1.5: 0.5 MB per token, all 32 layers) is left to arithmetic.

Run: `.venv/bin/python -m bench.scoring_memory [--rows 64] [--length 48] [--answer 4] [--vocab 152064]
[--dtype bfloat16]`. Each variant runs in a fresh process; the figure is the rise of its peak resident memory
over what it held before the call (`ru_maxrss`), and the call's wall time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time, torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration
from unlearn.data.collate import IGNORE
from unlearn.eval.scoring import answer_logprobs, model_inputs
a = json.loads(sys.argv[1])
torch.manual_seed(0)
text = LlamaConfig(vocab_size=a["vocab"], hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512, pad_token_id=0)
vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                          image_size=32, patch_size=16)
model = LlavaForConditionalGeneration(LlavaConfig(vision_config=vision, text_config=text, image_token_index=5,
                                                  image_seq_length=4)).to(getattr(torch, a["dtype"])).eval()
ids = torch.randint(10, a["vocab"], (a["rows"], a["length"]))
labels = torch.full_like(ids, IGNORE)
labels[:, -a["answer"]:] = ids[:, -a["answer"]:]
batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}

def every_position(model, batch):
    logits = model(**model_inputs(batch, "cpu")).logits[:, :-1].float()
    lab = batch["labels"][:, 1:]
    mask = lab != IGNORE
    logp = torch.log_softmax(logits, dim=-1).gather(-1, lab.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (logp * mask).sum(-1)

def all_logits(model, batch):
    logits = model(**model_inputs(batch, "cpu"), use_cache=False).logits[:, :-1]
    lab = batch["labels"][:, 1:]
    mask = lab != IGNORE
    logp = torch.zeros(lab.shape, dtype=torch.float32)
    logp[mask] = torch.log_softmax(logits[mask].float(), dim=-1).gather(-1, lab[mask].unsqueeze(-1)).squeeze(-1)
    return logp.sum(-1)

fn = {"every_position": every_position, "all_logits": all_logits, "answer_logits": answer_logprobs}[a["variant"]]
with torch.no_grad():
    fn(model, {k: v[:2] for k, v in batch.items()})  # warm-up on two rows
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    out = fn(model, batch)
    took = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rise_mb": (peak - before) / 1024, "seconds": took, "values": out.tolist()}))
"""


def run_child(child: str, spec: dict) -> dict:
    """Run `child` in a fresh process (a clean peak-memory counter) with `spec` as JSON; its last line back."""
    done = subprocess.run([sys.executable, "-c", child, json.dumps(spec)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(args: argparse.Namespace, variant: str) -> dict:
    return run_child(CHILD, {**vars(args), "variant": variant})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--length", type=int, default=48)
    ap.add_argument("--answer", type=int, default=4, help="answer tokens at the end of each row")
    ap.add_argument("--vocab", type=int, default=152064, help="Qwen2-VL's vocabulary by default")
    ap.add_argument("--dtype", default="bfloat16")
    args = ap.parse_args()
    runs = [(name, measure(args, variant)) for name, variant in
            (("every position, with cache", "every_position"), ("all logits, answers normalised", "all_logits"),
             ("answer logits only", "answer_logits"))]
    logits_gb = args.rows * args.length * args.vocab * 4 / 1e9
    print(f"{args.rows} rows x {args.length} tokens, {args.answer} answer tokens each, vocabulary {args.vocab}, "
          f"{args.dtype}; one float32 [rows, length, vocab] tensor is {logits_gb:.2f} GB")
    first = runs[0][1]
    for name, r in runs:
        print(f"  {name:<32} peak rise {r['rise_mb']:8.0f} MB   {r['seconds']:.2f} s   "
              f"{first['rise_mb'] / max(r['rise_mb'], 1):.1f}x less memory and {first['seconds'] / r['seconds']:.2f}x "
              f"faster than the first; the same values: {r['values'] == first['values']}")


if __name__ == "__main__":
    main()
