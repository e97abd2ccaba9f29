"""Whether a set of CPU float kernels makes the same weights on every x86-64 processor.

Why: docs/results.md is not reproduced to its digits on another machine (docs/frontier_evidence.md): each
processor's float kernels (PyTorch's vectorised ones, MKL's matrix products, oneDNN's convolutions) sum in their
own order, so one teaching gives other weights. Each library can be told which code path to take: if one choice
gave bit-identical weights on every processor, a page made under it would reproduce exactly anywhere. This trains
the embedded model's architecture (tiny_llava, random weights from a fixed seed) for `--steps` AdamW steps on a
fixed random batch, one torch thread, under each kernel mode in its own process (the variables are read when the
libraries load), and prints a digest of the trained weights and of the logits after, with the time taken.
Compare the digests of two machines (`--json FILE` on each, then `--compare A B`).

Run: `python -m bench.kernel_modes [--steps 30] [--json FILE]`; `--compare A.json B.json`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import sys
import time

from bench.child_json import run_json_child

# mode -> environment. default: what the machine picks. avx2: the AVX2 path of each library (what
# docs/frontier_evidence.md used to stand in for a processor without AVX-512). portable: PyTorch's scalar
# kernels, MKL's conditional numerical reproducibility at its most compatible path (MKL_CBWR=COMPATIBLE) and
# oneDNN at SSE4.1: the paths every x86-64 processor can take.
MODES = {
    "default": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
             "DNNL_MAX_CPU_ISA": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "portable": {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE", "DNNL_MAX_CPU_ISA": "SSE41",
                 "ONEDNN_MAX_CPU_ISA": "SSE41"},
}
# every variable a mode may set: a child gets only its mode's (one left in the caller's environment would
# override the mode; oneDNN reads ONEDNN_MAX_CPU_ISA before DNNL_MAX_CPU_ISA). What each library took is read
# back: PyTorch's capability, MKL's CNR branch and oneDNN's ISA (their verbose lines on one product and one
# convolution, `libraries_chosen`)
MODE_VARIABLES = {name for env in MODES.values() for name in env} | {"MKL_DEBUG_CPU_TYPE"}


def processor() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def libraries_chosen() -> None:
    """Print MKL's and oneDNN's verbose lines for one matrix product and one convolution (read by `chosen`)."""
    import torch

    with torch.backends.mkl.verbose(torch.backends.mkl.VERBOSE_ON), \
            torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
        torch.randn(64, 128) @ torch.randn(128, 256)
        torch.nn.functional.conv2d(torch.randn(1, 3, 32, 32), torch.randn(8, 3, 16, 16), stride=16)


def chosen(stdout: str) -> dict[str, str | None]:
    """MKL's conditional-numerical-reproducibility branch and oneDNN's ISA, from a child's verbose lines."""
    cnr = re.search(r"CNR:(\S+)", stdout)
    isa = re.search(r"onednn_verbose,.*,isa:(.+)", stdout)
    return {"mkl_cnr": cnr and cnr.group(1), "onednn_isa": isa and isa.group(1).strip()}


def train_digest(steps: int) -> dict:
    """The child's work: build, train, digest (one torch thread)."""
    import torch
    from hydra.utils import instantiate

    from unlearn.config import compose_config

    torch.set_num_threads(1)
    cfg = compose_config(["seed=0"], "/tmp/unused", "/tmp/unused")
    torch.manual_seed(0)
    model, _ = instantiate(cfg.model.build)
    g = torch.Generator().manual_seed(0)
    text = model.config.text_config
    vision = model.config.vision_config
    n_image = (vision.image_size // vision.patch_size) ** 2
    ids = torch.randint(0, text.vocab_size - 1, (8, n_image + 24), generator=g)
    ids[ids == model.config.image_token_id] = 0
    ids[:, 1:1 + n_image] = model.config.image_token_id
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
             "pixel_values": torch.randn(8, 3, vision.image_size, vision.image_size, generator=g),
             "labels": torch.where(ids == model.config.image_token_id, -100, ids)}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    start = time.perf_counter()
    for _ in range(steps):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    weights = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()[:16]
    return {"capability": torch.backends.cpu.get_cpu_capability(), "weights": weights,
            "logits": hashlib.sha256(logits.numpy().tobytes()).hexdigest()[:16], "loss": float(loss),
            "seconds": seconds, "torch": torch.__version__}


def run_modes(steps: int, modes=tuple(MODES)) -> dict:
    out = {"processor": processor(), "python": platform.python_version(), "steps": steps, "modes": {}}
    for mode in modes:
        env = {k: v for k, v in os.environ.items() if k not in MODE_VARIABLES}
        env.update(MODES[mode], OMP_NUM_THREADS="1")
        result, done = run_json_child("bench.kernel_modes", ["--child", "--steps", str(steps)], env)
        if result is None:
            raise RuntimeError(f"mode {mode} failed: {done.stderr[-2000:]}")
        out["modes"][mode] = {**result, **chosen(done.stdout)}
    return out


def show(result: dict) -> None:
    print(f"{result['processor']}, python {result['python']}, {result['steps']} AdamW steps of tiny_llava, one thread")
    for mode, r in result["modes"].items():
        print(f"{mode:<9} capability {r['capability']:<8} MKL CNR {r.get('mkl_cnr')} oneDNN {r.get('onednn_isa')}  "
              f"weights {r['weights']}  logits {r['logits']}  loss {r['loss']:.6f}  {r['seconds']:.2f} s  "
              f"(torch {r['torch']})")


def compare(a: dict, b: dict) -> dict[str, bool]:
    """mode -> whether both machines trained bit-identical weights and logits under it."""
    same = {m: a["modes"][m]["weights"] == b["modes"][m]["weights"] and a["modes"][m]["logits"] == b["modes"][m]["logits"]
            for m in a["modes"] if m in b["modes"]}
    print(f"{a['processor']} against {b['processor']}:")
    for m, s in same.items():
        print(f"  {m:<9} {'bit-identical' if s else 'different'}")
    return same


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--json", help="also write the result here")
    ap.add_argument("--compare", nargs=2, metavar=("A", "B"), help="two --json files: which modes agree")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        libraries_chosen()
        sys.stdout.flush()
        print(json.dumps(train_digest(args.steps)))
        return None
    if args.compare:
        return compare(*(json.loads(open(f).read()) for f in args.compare))
    result = run_modes(args.steps)
    show(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
