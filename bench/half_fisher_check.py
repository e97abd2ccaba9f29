"""Does `half_fisher_add` round as the authors' CPU division does, on this machine's GPU?

Why: their SFRon.py squares and divides each half-precision gradient on the CPU; CUDA divides a float16 tensor by a
Python number through its float32 reciprocal, which rounds some float16 subnormal halfway cases the other way, and
by a divisor tensor only after casting the divisor to the half dtype (a bfloat16 count past 256 is rounded). This
runs every positive value of `--dtype` (float16: all of them, subnormals included; bfloat16: every one from 2^-30
to 2^30) through `half_fisher_add` on the GPU and their arithmetic on the CPU, for len(loader) in 1..`--max-batches`
and the counts of `--also`, and prints how many (value, batches) pairs differ, beside the same with a plain Python
divisor (the control). On CPU both counts are 0.

`python -m bench.half_fisher_check [--device cuda] [--dtype float16|bfloat16] [--max-batches 64] [--also 257 1001]`
"""

from __future__ import annotations

import argparse

import torch

from unlearn.mmunlearner.saliency import half_fisher_add


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=("float16", "bfloat16"), default="float16")
    ap.add_argument("--max-batches", type=int, default=64)
    ap.add_argument("--also", type=int, nargs="*", default=[257, 1001, 2049, 4097],
                    help="batch counts past the half dtype's exact integers (bfloat16: 256, float16: 2048)")
    args = ap.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    if dtype == torch.float16:
        bits = torch.arange(1, 0x7C00, dtype=torch.int32).to(torch.int16)  # every positive finite float16
    else:  # every positive bfloat16 from 2^-30 to 2^30 (exponent fields 97..157)
        bits = torch.arange(97 << 7, 158 << 7, dtype=torch.int32).to(torch.int16)
    values = bits.view(dtype)
    grads = values.float().sqrt().to(dtype)  # gradients whose half-precision squares cover the range
    zero = torch.zeros_like(grads)
    ours = plain = 0
    counts = [*range(1, args.max_batches + 1), *args.also]
    for n in counts:
        theirs = zero + grads ** 2 / n  # their CPU arithmetic
        got = half_fisher_add(zero.to(args.device), grads.to(args.device), n, dtype).cpu()
        naive = (zero.to(args.device) + grads.to(args.device) ** 2 / n).cpu()
        ours += int((got != theirs).sum())
        plain += int((naive != theirs).sum())
    result = {"device": args.device, "dtype": args.dtype, "batch_counts": counts, "differ": ours,
              "differ_with_python_divisor": plain}
    print(f"{args.device} {args.dtype}: half_fisher_add differs from the CPU division in {ours} (value, batches) "
          f"pairs; a Python divisor would differ in {plain}")
    return result


if __name__ == "__main__":
    main()
