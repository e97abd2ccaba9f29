import pytest
import torch

from unlearn.manu.prune import prune_neurons
from unlearn.pipeline import RunContext, evaluate
from unlearn.relearn import attack_rows, relearn

from .test_finetune import _cfg


def test_relearn_evaluates_an_attacked_copy(tmp_path, small_benchmark, tiny_model):
    model, proc = tiny_model
    cfg = _cfg(tmp_path, "eval.relearn.enabled=true", "eval.relearn.steps=3", "eval.relearn.fraction=1.0",
               "eval.relearn.lr=0.01", "eval.tasks=[mc]")
    ctx = RunContext(cfg, small_benchmark, model, proc, tmp_path)
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    metrics, records = relearn(ctx, evaluate)
    assert {k.split("/")[1] for k in metrics} == {"forget", "test"}
    assert all(k.startswith("relearn/") for k in metrics) and records
    assert ctx.model is model  # the run keeps (and saves) the unlearned model, not the attacked copy
    assert all(torch.equal(p, weights[n]) for n, p in model.named_parameters())
    # the attack's Trainer records its lost steps under its own name (teaching's is "finetune"): float32, none
    assert [(r["stage"], r["fraction"], r["lrs"]) for r in ctx.artifacts["lost_steps"]] == [("eval.relearn", 0.0, [0.01])]


def test_attack_rows_checks_its_config(small_benchmark):
    assert len(attack_rows(small_benchmark, "forget", 1.0, 0)) == len(small_benchmark.forget_ids)
    with pytest.raises(ValueError, match="eval.relearn.data='test'"):
        attack_rows(small_benchmark, "test", 0.5, 0)
    with pytest.raises(ValueError, match="eval.relearn.fraction=0"):
        attack_rows(small_benchmark, "forget", 0, 0)


def test_pruned_neurons_stay_pruned_under_finetuning(tmp_path, small_benchmark, tiny_model):
    from unlearn.methods.finetune import teach

    model, proc = tiny_model
    name = "model.language_model.layers.1.mlp.down_proj"
    mask = torch.zeros(256, dtype=torch.bool)
    mask[[5, 77]] = True
    prune_neurons(model, {name: mask})
    cfg = _cfg(tmp_path, "finetune.epochs=2", "finetune.target_mc_acc=null", "finetune.forms=[text]")
    teach(RunContext(cfg, small_benchmark, model, proc, tmp_path), cfg.finetune)
    mlp = model.get_submodule(name.rsplit(".", 1)[0])
    assert torch.all(mlp.down_proj.weight[:, [5, 77]] == 0)
    assert torch.all(mlp.gate_proj.weight[[5, 77]] == 0) and torch.all(mlp.up_proj.weight[[5, 77]] == 0)
    assert mlp.down_proj.weight[:, 6].abs().sum() > 0
