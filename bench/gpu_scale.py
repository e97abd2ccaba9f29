"""MANU's statistics pass and a gradient-ascent step on a 7B-shaped LLaVA-1.5 with random weights.

Measured side by side in one process: a plain no-grad forward against the statistics pass (hooks on every
MLP of both towers, patterns from configs/model/llava_1_5_7b.yaml) over the same batches, interleaved; then
one GA step (forward, backward, SGD update) in the same dtype. Prints tokens/s, the ratio and peak memory.

On a GPU: `python -m bench.gpu_scale --shape 7b --device cuda --dtype bfloat16` (about 16 GiB of weights).
`--shape tiny --device cpu` runs the same code in seconds (the tests do).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from callbacks.activation_stats import ActivationStatistics
from unlearn.config import compose_config
from unlearn.losses import ga_loss

SHAPES = {
    # LLaVA-1.5-7B: CLIP ViT-L/14 at 336 px (576 image tokens) + a Llama-2-7B-shaped Vicuna
    "7b": dict(vision=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                           image_size=336, patch_size=14),
               text=dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                         num_key_value_heads=32, vocab_size=32064)),
    "tiny": dict(vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                             image_size=28, patch_size=14),
                 text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=4, vocab_size=500)),
}


def build(shape: str, device: str, dtype: torch.dtype):
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    s = SHAPES[shape]
    config = LlavaConfig(vision_config=dict(model_type="clip_vision_model", **s["vision"]),
                         text_config=dict(model_type="llama", **s["text"]), image_token_index=s["text"]["vocab_size"] - 1,
                         vision_feature_layer=-2, vision_feature_select_strategy="default")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlavaForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    return model.eval(), config


def batch(config, batch_size: int, text_tokens: int, device: str, dtype: torch.dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    v = config.vision_config
    n_image = (v.image_size // v.patch_size) ** 2
    ids = torch.randint(0, config.text_config.vocab_size - 1, (batch_size, n_image + text_tokens), generator=g)
    ids[:, 1:1 + n_image] = config.image_token_index
    pixels = torch.randn(batch_size, 3, v.image_size, v.image_size, generator=g)
    labels = ids.clone()
    labels[:, :1 + n_image] = -100
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids, device=device),
            "pixel_values": pixels.to(device, dtype), "labels": labels.to(device)}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_gib(device: str) -> float:
    return torch.cuda.max_memory_allocated() / 2 ** 30 if device.startswith("cuda") else float("nan")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="7b")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--text-tokens", type=int, default=64)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    model, config = build(args.shape, args.device, dtype)
    batches = [batch(config, args.batch_size, args.text_tokens, args.device, dtype, seed=i) for i in range(args.batches)]
    tokens = sum(b["input_ids"].numel() for b in batches)
    inputs = [{k: v for k, v in b.items() if k != "labels"} for b in batches]
    patterns = dict(compose_config(["model=llava_1_5_7b"], "/tmp/unused", "/tmp/unused").model.mlp_modules)
    stats = ActivationStatistics(patterns, tau=0.1)
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.shape}: {params / 1e9:.2f} B parameters, {args.dtype} on {args.device}; {args.batches} batches x "
          f"{args.batch_size} x {batches[0]['input_ids'].shape[1]} tokens")

    def plain():
        with torch.no_grad():
            for b in inputs:
                model(**b)

    def with_stats():
        stats.attach(model)
        try:
            with torch.no_grad():
                for b in inputs:
                    stats.begin_batch("forget", b["attention_mask"])
                    model(**b)
            stats.end_batch()
        finally:
            stats.detach()

    plain()  # warm-up (kernels, allocator)
    plain_t, stats_t = [], []
    for _ in range(args.repeats):
        for fn, out in ((plain, plain_t), (with_stats, stats_t)):
            _sync(args.device)
            t = time.perf_counter()
            fn()
            _sync(args.device)
            out.append(time.perf_counter() - t)
    forward_peak = _peak_gib(args.device)
    ratio = statistics.median(s / p for s, p in zip(stats_t, plain_t))
    print(f"plain forward: {tokens / statistics.median(plain_t):,.0f} tokens/s; statistics pass: "
          f"{tokens / statistics.median(stats_t):,.0f} tokens/s; ratio {ratio:.3f}x (median of {args.repeats}); "
          f"peak memory {forward_peak:.1f} GiB")

    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-5)
    step_t = []
    for b in batches[:2]:
        _sync(args.device)
        t = time.perf_counter()
        out = model(**{k: v for k, v in b.items() if k != "labels"})
        loss = ga_loss(out.logits, b["labels"])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(args.device)
        step_t.append(time.perf_counter() - t)
    step_tokens = batches[0]["input_ids"].numel()
    print(f"GA step (forward + backward + SGD): {step_t[-1]:.3f} s, {step_tokens / step_t[-1]:,.0f} tokens/s; "
          f"peak memory {_peak_gib(args.device):.1f} GiB")
    return {"ratio": ratio, "plain_tokens_s": tokens / statistics.median(plain_t), "ga_step_s": step_t[-1],
            "finite_loss": bool(torch.isfinite(loss)), "moments": stats.moments}


if __name__ == "__main__":
    main()
