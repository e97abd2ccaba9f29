"""The trainer config as the cache keys and the process checks read it: how many processes it runs on, its
precision under one spelling. Imports torch only to count the GPUs where the config leaves it to the machine
(`auto`), so the checks before a run (unlearn/before_run.py) of a trainer that names its devices need neither
Lightning, transformers nor torch."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def device_count(trainer: dict):
    """`trainer.devices` as the number of processes Lightning starts here: `auto` and -1 count the visible GPUs
    (on CPU one process), a list or "0,1" its length, "4" the number; so a teaching with `trainer=ddp` on four
    GPUs and one on eight (twice the effective batch) are keyed apart, and `devices=4` keys as auto on four.
    Until the fourteenth session (2026-12-02) `auto` entered the keys as the word."""
    devices = trainer.get("devices", "auto")
    if isinstance(devices, str) and devices.strip() != "auto":
        text = devices.strip()
        if "," in text:
            return len([d for d in text.split(",") if d.strip()])
        if not text.lstrip("-").isdigit():
            raise ValueError(f"trainer.devices={devices!r}: expected auto, a count, -1 or a list of device ids")
        devices = int(text)  # Lightning reads "4" as 4 and "-1" as -1
    if isinstance(devices, (list, tuple)):
        return len(devices)
    if devices in ("auto", -1):
        accelerator = str(trainer.get("accelerator", "auto"))
        on_gpu = accelerator in ("gpu", "cuda", "auto")
        return (visible_gpus() or 1) if on_gpu else 1  # Apple's gpu: one
    return devices


PRECISION_ALIASES = {"16": "16-mixed", "bf16": "bf16-mixed", "32": "32-true", "64": "64-true"}
# Lightning's trainer.precision values (its 64, 32 and 16 written as numbers too), accelerator and strategy names, which
# the checks before a run read without Lightning's import (tests/test_every_setting_checked.py holds them to it)
PRECISIONS = ("transformer-engine", "transformer-engine-float16", "16-true", "16-mixed", "bf16-true", "bf16-mixed",
              "32-true", "64-true", *PRECISION_ALIASES)
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
STRATEGIES = ("auto", "ddp", "ddp_find_unused_parameters_false", "ddp_find_unused_parameters_true", "ddp_fork",
              "ddp_fork_find_unused_parameters_false", "ddp_fork_find_unused_parameters_true", "ddp_notebook",
              "ddp_notebook_find_unused_parameters_false", "ddp_notebook_find_unused_parameters_true", "ddp_spawn",
              "ddp_spawn_find_unused_parameters_false", "ddp_spawn_find_unused_parameters_true", "deepspeed",
              "deepspeed_stage_1", "deepspeed_stage_2", "deepspeed_stage_2_offload", "deepspeed_stage_3",
              "deepspeed_stage_3_offload", "deepspeed_stage_3_offload_nvme", "fsdp", "fsdp_cpu_offload",
              "single_device", "single_tpu", "single_xla", "xla", "xla_debug")


def keyed_trainer(cfg: DictConfig) -> dict:
    """The trainer config as the cache keys read it: resolved, its devices as a count (`device_count`), and
    `accelerator: auto` as the device Lightning picks here (until 2026-12-05 the word: a model taught on the GPU
    and one taught on one CPU thread under CUDA_VISIBLE_DEVICES= shared a key)."""
    trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
    if "devices" in trainer:
        trainer["devices"] = device_count(trainer)
    # Lightning's spellings of one precision (its _PRECISION_INPUT_STR_ALIAS_CONVERSION), and one node, as the
    # shipped presets write them: until 2026-12-05 `trainer.precision=32` or `+trainer.num_nodes=1` taught anew
    if str(trainer.get("precision")) in PRECISION_ALIASES:
        trainer["precision"] = PRECISION_ALIASES[str(trainer["precision"])]
    if str(trainer.get("num_nodes")) == "1":
        del trainer["num_nodes"]
    if trainer.get("accelerator") == "auto":
        trainer["accelerator"] = "gpu" if visible_gpus() else "cpu"
    return trainer


def teaching_processes(cfg: DictConfig) -> int:
    """How many processes a teaching under `cfg.trainer` runs on (devices x nodes)."""
    trainer = keyed_trainer(cfg)
    return int(trainer.get("devices", 1)) * int(trainer.get("num_nodes", 1) or 1)
