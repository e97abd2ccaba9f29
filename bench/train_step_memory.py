"""One GPU's memory and time for a gradient-ascent step at LLaVA-1.5-7B shape, per way of storing what is trained.

Why: an Adam step of the 7-8B configs' lr 2e-5 written into bfloat16 weights is rounded away at most of them
(callbacks/lost_updates.py). The ways out are float32 weights under bf16 autocast (`model.dtype: float32`, the 7-8B
configs' since 2026-12-04, which trainer=gpu/fsdp's bf16-mixed computes in bf16) or LoRA over a float32 model (the
MLLMU-Bench baselines' way, experiment=mllmu_baselines). Which of them one GPU holds decided the 7-8B default, so
this measures each, in its own process (a clean peak; one that runs out of memory leaves the others their figures):

  bf16        bfloat16 weights, AdamW: what `model=llava_1_5_7b method=ga trainer=gpu` trained until 2026-12-04
  fp32        float32 weights, bf16 autocast, AdamW as the method configs make it (torch's default implementation)
  fp32_fused  the same with AdamW(fused=True), which needs no temporaries the size of the weights
  lora        float32 weights frozen, LoRA r 8 on model.lora_target_modules in float32, bf16 autocast
  kl_fused    fp32_fused plus what KL and NPO add: a frozen float32 copy of the starting model, run without
              gradients on the batch, and KL's loss (unlearn.losses.kl_loss) with its retain term on that batch
  kl_fused_bf16_ref  kl_fused with the copy in bfloat16, computed out of the autocast
              (`method.reference_dtype=bfloat16` under trainer=gpu)

each with activation checkpointing, two steps of GA on one batch of `--batch-size` x (576 image + `--text-tokens`)
tokens. Prints the peak memory, the second step's time and the fraction of the trained weights a step of `--lr`
leaves unchanged (steps_rounded_away; on random weights drawn at the Llama init's std 0.02, not a checkpoint's).

On the GPU: `python -m bench.train_step_memory --shape 7b --device cuda` (about 3 minutes). `--shape tiny --device
cpu` runs the same code in seconds (the tests do).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

import torch

from bench.child_json import run_json_child

SETTINGS = ("bf16", "fp32", "fp32_fused", "lora", "kl_fused", "kl_fused_bf16_ref")


def one_setting(setting: str, shape: str, device: str, batch_size: int, text_tokens: int, lr: float) -> dict:
    from bench.gpu_scale import _peak_gib, _sync, batch, build
    from callbacks.lost_updates import lost_step_counts
    from unlearn.config import compose_config
    from unlearn.losses import ga_loss, kl_loss

    weights = torch.bfloat16 if setting == "bf16" else torch.float32
    model, config = build(shape, device, weights)
    model.train()
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    if setting == "lora":
        from peft import LoraConfig, get_peft_model

        targets = list(compose_config(["model=llava_1_5_7b"], "/tmp/unused", "/tmp/unused").model.lora_target_modules)
        model.enable_input_require_grads()  # checkpointed blocks over frozen embeddings still pass gradients
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=targets))
    from unlearn.models.precision import cast_copy, own_precision

    reference = None
    if setting == "kl_fused":
        import copy

        reference = copy.deepcopy(model).eval().requires_grad_(False)
    elif setting == "kl_fused_bf16_ref":
        reference = cast_copy(model, torch.bfloat16).eval()
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=lr, fused=setting.startswith(("fp32_fused", "kl_fused")) or None)
    autocast = (torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
                if weights == torch.float32 else contextlib.nullcontext())
    b = batch(config, batch_size, text_tokens, device, torch.bfloat16 if setting == "bf16" else torch.float32)
    lost, n_trained = (int(x) for x in lost_step_counts([optimizer])[0].sum(0).tolist())
    times = []
    for _ in range(2):
        _sync(device)
        start = time.perf_counter()
        inputs = {k: v for k, v in b.items() if k != "labels"}
        with autocast:
            out = model(**inputs)
            if reference is None:
                loss = ga_loss(out.logits, b["labels"])
            else:  # KL's loss, its retain term on the same batch
                with torch.no_grad(), own_precision(device, setting == "kl_fused_bf16_ref"):
                    ref_logits = reference(**inputs).logits
                loss = kl_loss(out.logits, b["labels"], out.logits, ref_logits, b["labels"])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(device)
        times.append(time.perf_counter() - start)
    return {"setting": setting, "trained": n_trained, "lost_fraction": lost / n_trained, "step_s": times[-1],
            "peak_gib": _peak_gib(device), "tokens": b["input_ids"].numel(), "finite": bool(torch.isfinite(loss))}


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=("7b", "tiny"), default="7b")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--text-tokens", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-5)  # the 7-8B configs' model.unlearn_lr
    ap.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    ap.add_argument("--child", choices=SETTINGS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(one_setting(args.child, args.shape, args.device, args.batch_size, args.text_tokens, args.lr)))
        return []
    rows = []
    total = torch.cuda.get_device_properties(0).total_memory / 2 ** 30 if args.device.startswith("cuda") else None
    print(f"{args.shape} shape on {args.device}" + (f" ({total:.0f} GiB)" if total else "") +
          f"; GA, AdamW lr {args.lr:g}, batch {args.batch_size} x (image + {args.text_tokens} text tokens), "
          "activation checkpointing")
    for setting in args.settings:
        r, done = run_json_child("bench.train_step_memory", [
            "--child", setting, "--shape", args.shape, "--device", args.device, "--batch-size", str(args.batch_size),
            "--text-tokens", str(args.text_tokens), "--lr", str(args.lr)])
        if r is None:
            why = "out of memory" if "OutOfMemoryError" in done.stderr else f"exit {done.returncode}"
            print(f"{setting:<17} failed: {why}: {done.stderr.strip().splitlines()[-1:]}")
            rows.append({"setting": setting, "failed": why})
            continue
        rows.append(r)
        print(f"{setting:<17} trained {r['trained'] / 1e6:9.1f} M  peak {r['peak_gib']:6.1f} GiB  step "
              f"{r['step_s']:6.3f} s ({r['tokens'] / r['step_s']:,.0f} tokens/s)  a step of lr leaves "
              f"{r['lost_fraction']:.1%} unchanged" + ("" if r["finite"] else "  LOSS NOT FINITE"))
    return rows


if __name__ == "__main__":
    main()
