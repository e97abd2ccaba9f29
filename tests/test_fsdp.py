"""trainer=fsdp on CPU (trainer=fsdp_sim: two gloo processes, torch's FSDP given the CPU device): a run's several
Trainers on one model. Found on an H200 (2026-12-04), where no FSDP run had been made before: after the
before-evaluation the model stayed wrapped in FSDP units, so KL's and NPO's reference could not be copied and the
next Trainer sharded nothing more; Lightning's FSDP refused `gradient_clip_val` (1.0 in every trainer preset);
activation checkpointing re-ran each block's forward into the same key/value cache."""

import pytest
import torch

from tests.test_ddp import SCRIPTS, _run, _same_weights_and_moved


@pytest.mark.slow
def test_fsdp_ends_where_ddp_does_after_a_before_evaluation(tmp_path):
    """KL (a frozen reference copied from the model) at the default clipping, after a before-evaluation on the
    same model, two processes: FSDP (blocks sharded, activations recomputed) ends at DDP's weights, and the model
    it leaves is whole again: its own parameter names and shapes, no FSDP unit or checkpoint wrapper inside."""
    script = SCRIPTS / "gradient_update.py"
    args = ("--schedule", "paired", "--method", "kl", "--evaluate-first")
    ddp, fsdp = _run(2, tmp_path, script, *args), _run(2, tmp_path, script, *args, "--fsdp")
    assert fsdp["weights"].keys() == ddp["weights"].keys() == ddp["start"].keys()
    assert all(fsdp["weights"][n].shape == w.shape for n, w in ddp["start"].items())
    _same_weights_and_moved(ddp, fsdp)
    assert fsdp["wrappers"] == [] and ddp["wrappers"] == []


def test_whole_modules_leaves_an_unwrapped_model_as_it_is():
    from unlearn.strategies import whole_modules

    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    params = list(model.parameters())
    assert whole_modules(model) is model and list(model.parameters()) == params
