"""Does `half_fisher_add` round as the authors' CPU division does, on this machine's GPU?

Why: their SFRon.py squares and divides each float16 gradient on the CPU; CUDA divides a float16 tensor by a Python
number through its float32 reciprocal, which rounds some float16 subnormal halfway cases the other way. This runs
every positive float16 value (subnormals included) through `half_fisher_add` on the GPU and their arithmetic on the
CPU, for len(loader) 1..`--max-batches`, and prints how many (value, batches) pairs differ, beside the same with a
plain Python divisor (the control: the pairs the reciprocal rounds otherwise). On CPU both counts are 0.

`python -m bench.half_fisher_check [--device cuda] [--max-batches 64]`
"""

from __future__ import annotations

import argparse

import torch

from unlearn.mmunlearner.saliency import half_fisher_add


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--max-batches", type=int, default=64)
    args = ap.parse_args(argv)
    bits = torch.arange(1, 0x7C00, dtype=torch.int32).to(torch.int16)  # every positive finite float16
    values = bits.view(torch.float16)
    grads = values.float().sqrt().half()  # gradients whose float16 squares cover the range
    zero = torch.zeros_like(grads)
    ours = plain = 0
    for n in range(1, args.max_batches + 1):
        theirs = zero + grads ** 2 / n  # their CPU arithmetic
        got = half_fisher_add(zero.to(args.device), grads.to(args.device), n).cpu()
        naive = (zero.to(args.device) + grads.to(args.device) ** 2 / n).cpu()
        ours += int((got != theirs).sum())
        plain += int((naive != theirs).sum())
    result = {"device": args.device, "max_batches": args.max_batches, "differ": ours, "differ_with_python_divisor": plain}
    print(f"{args.device}: half_fisher_add differs from the CPU division in {ours} (value, batches) pairs; a Python "
          f"divisor would differ in {plain}")
    return result


if __name__ == "__main__":
    main()
