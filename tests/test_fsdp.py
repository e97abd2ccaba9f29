"""trainer=fsdp on CPU (trainer=fsdp_sim: two gloo processes, torch's FSDP given the CPU device): a run's several
Trainers on one model. Found on an H200 (2026-12-04), where no FSDP run had been made before: after the
before-evaluation the model stayed wrapped in FSDP units, so KL's and NPO's reference could not be copied and the
next Trainer sharded nothing more; Lightning's FSDP refused `gradient_clip_val` (1.0 in every trainer preset);
activation checkpointing re-ran each block's forward into the same key/value cache. FSDP ending at DDP's weights:
tests/test_ddp.py (it reads that file's two-process launch)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.test_ddp import SCRIPTS


def test_whole_modules_leaves_an_unwrapped_model_as_it_is():
    from unlearn.strategies import whole_modules

    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    params = list(model.parameters())
    assert whole_modules(model) is model and list(model.parameters()) == params


@pytest.fixture(scope="module")
def fsdp_teaching(tmp_path_factory):
    """`python train.py method=finetune debug=fast trainer=fsdp_sim`, the probe on (debug=fast turns it off): one
    run, read by the two tests below. Returns its run directory and cache."""
    tmp = tmp_path_factory.mktemp("fsdp_teaching")
    run_dir, cache = tmp / "run", tmp / "cache"
    proc = subprocess.run([sys.executable, "train.py", "method=finetune", "debug=fast", "trainer=fsdp_sim",
                           "finetune.target_mc_acc=0.5", f"hydra.run.dir={run_dir}"], cwd=Path(__file__).parent.parent,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "UNLEARN_CACHE": str(cache), "WANDB_MODE": "disabled"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    return run_dir, cache


@pytest.mark.slow
def test_teaching_and_evaluating_under_fsdp_with_ranks_holding_different_kinds_of_rows(fsdp_teaching):
    """The ranks' batches differ in whether they hold images, in training and in the evaluations. With the vision
    blocks as FSDP units (the model configs' until 2026-12-04) rank 0 gathered a vision block's weights while
    rank 1 gathered a language block's, and gloo aborted ("Received data size doesn't match expected size",
    checked)."""
    from safetensors.torch import load_file

    run_dir, _ = fsdp_teaching
    saved = {k: v for f in (run_dir / "model").glob("*.safetensors") for k, v in load_file(f).items()}
    assert saved and not any("_fsdp" in k or "checkpoint_wrapped" in k for k in saved)
    assert (run_dir / "metrics.json").is_file()  # the evaluations ran too


@pytest.mark.slow
def test_the_teaching_probe_runs_under_fsdp(fsdp_teaching):
    """The probe that stops teaching (finetune.target_mc_acc, 0.97 by default) scored the model directly, outside
    FSDP's root unit, whose weights (embeddings, head, vision tower) are flat shards between forwards: every
    teaching under trainer=fsdp or fsdp_sim with the probe on failed at its first epoch ("'weight' must be 2-D",
    until 2026-12-05). Both ranks score the same weights, so the one probe history is written."""
    import json

    _, cache = fsdp_teaching
    (record,) = (cache / "vanilla").glob("*/teaching.json")
    probe = json.loads(record.read_text())["probe"]
    assert probe and all(0.0 <= h["multimodal"] <= 1.0 and 0.0 <= h["text"] <= 1.0 for h in probe)


def test_whole_modules_gives_each_rank_the_model_it_started_from(tmp_path):
    """Two processes, FULL_SHARD, a unit per block, activation checkpointing, bf16 mixed precision: after a
    forward, whole_modules returns the very model object with its own parameter names, values, dtypes and
    requires_grad, the tie kept, the buffer FSDP cast to bf16 back in float32, FSDP's module marks gone, and the
    same outputs."""
    import socket

    with socket.socket() as s:  # a port the system says is free (a random one could be taken, or ephemeral)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ok"
    proc = subprocess.run([sys.executable, str(SCRIPTS / "fsdp_whole.py"), str(port), str(out)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert out.read_text() == "ok"


def test_wrapper_names_fsdp_detection_refusals_and_activation_checkpointing_by_hand():
    from types import SimpleNamespace

    from unlearn.fsdp_refusals import refuse_fsdp, uses_fsdp
    from unlearn.strategies import fsdp_strategy, unwrapped_name

    assert unwrapped_name("_orig_mod.model._fsdp_wrapped_module.layers.0._checkpoint_wrapped_module.mlp.weight") == \
        "model.layers.0.mlp.weight"  # torch.compile's, FSDP's and activation checkpointing's prefixes
    assert uses_fsdp({"strategy": {"_target_": "lightning.pytorch.strategies.FSDPStrategy"}})  # any case
    assert uses_fsdp({"strategy": "fsdp"}) and not uses_fsdp({"strategy": "ddp"}) and not uses_fsdp({"strategy": None})
    cfg = SimpleNamespace(trainer={"strategy": "fsdp", "accelerator": "gpu"})
    with pytest.raises(ValueError, match=r"method=mine does not run under trainer=fsdp .*; train it whole$"):
        refuse_fsdp(cfg, "mine", "train it whole")  # a method of one's own, its own advice
    refuse_fsdp(cfg, "mine")  # not refused without one
    refuse_fsdp(SimpleNamespace(trainer={"strategy": "ddp"}), "manu")
    assert fsdp_strategy(["torch.nn.Linear"], activation_checkpointing=False)._activation_checkpointing_kwargs == {}
    assert fsdp_strategy(["torch.nn.Linear"])._activation_checkpointing_kwargs
    with pytest.raises(ValueError, match=r"model.fsdp_layers: cannot import 'torch.nn.Linaer'"):
        fsdp_strategy(["torch.nn.Linaer"])
