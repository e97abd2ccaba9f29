"""experiment=open_unlearning: open-unlearning's trainer and method settings, as read from locuslab/open-unlearning at
d3d7cf9 (2025-12-23). Each value below is what their file says (file:line), held against the composed preset under
each gradient method, so an edit to the preset or to configs/method/*.yaml that moves one fails here."""

import pytest
from omegaconf import OmegaConf

from unlearn.config import compose_config

# (our key, their value, their file:line)
THEIRS = [
    ("method.batch_size", 8, "configs/trainer/finetune.yaml:3 per_device_train_batch_size"),
    ("trainer.accumulate_grad_batches", 4, "configs/trainer/finetune.yaml:5 gradient_accumulation_steps"),
    ("method.optimizer.lr", 1e-5, "configs/experiment/unlearn/tofu/default.yaml:45 learning_rate"),
    ("method.optimizer.weight_decay", 0.01, "configs/experiment/unlearn/tofu/default.yaml:46 weight_decay"),
    ("method.epochs", 10, "configs/experiment/unlearn/tofu/default.yaml:47 num_train_epochs"),
    ("method.warmup_epochs", 1, "configs/experiment/unlearn/tofu/default.yaml:44 warmup_epochs: 1.0"),
    ("method.lr_decay", "linear", "TrainingArguments lr_scheduler_type default (no override in their configs)"),
    ("trainer.gradient_clip_val", 1.0, "TrainingArguments max_grad_norm default (no override in their configs)"),
    ("method.optimizer.betas", [0.9, 0.999], "TrainingArguments adam_beta1 / adam_beta2 defaults"),
    ("method.optimizer.eps", 1e-8, "TrainingArguments adam_epsilon default"),
    ("trainer.precision", "bf16-true", "configs/trainer/finetune.yaml:7 bf16: True, over bfloat16 weights"),
    ("model.dtype", "bfloat16", "configs/model/Llama-3.2-1B-Instruct.yaml:4 torch_dtype: bfloat16"),
    ("seed", 0, "configs/trainer/finetune.yaml:24 seed"),
    ("method.schedule", "paired", "src/data/unlearn.py:34-40 forget and retain in one item"),
    ("method.retain_draw", "with_replacement", "src/data/unlearn.py:39 torch.randint per forget row"),
    ("method.answer_only", True, "src/data/utils.py:124 IGNORE_INDEX before the response"),
    ("method.token_mean", "process", "per-device outputs.loss (src/trainer/unlearn/grad_diff.py:49)"),
    ("method.kl_reduction", "position_mean", "src/trainer/utils.py:17-33 kl_div batchmean over (B*T, V)"),
    ("method.kl_retain_nll", False, "src/trainer/unlearn/grad_diff.py:30-34 the KL alone"),
    ("method.npo_log_ratio", "sequence_sum", "src/trainer/utils.py:34-44 compute_batch_nll sums"),
    ("method.npo_empty_rows", "count", "src/trainer/utils.py:66 .mean() over every row"),
    ("method.reference_path", None, "src/trainer/unlearn/npo.py:9-10 a copy of the model"),
]
METHOD_ARGS = {  # configs/trainer/GradDiff.yaml:5-8, configs/trainer/NPO.yaml:5-9; GradAscent.yaml has none
    "grad_diff": {"gamma": 1.0, "alpha": 1.0},
    "kl": {"gamma": 1.0, "alpha": 1.0},  # GradDiff with retain_loss_type: KL
    "npo": {"gamma": 1.0, "alpha": 1.0, "beta": 0.1},
    "ga": {"gamma": 1.0, "alpha": 1.0},  # the values method=ga requires (it has neither term weight)
}


@pytest.mark.parametrize("method", list(METHOD_ARGS))
def test_the_preset_holds_open_unlearnings_values(tmp_path, method):
    cfg = compose_config(["experiment=open_unlearning", f"method={method}"], tmp_path / "run", tmp_path / "cache")
    got = {key: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v := OmegaConf.select(cfg, key))
           else v for key, _, _ in THEIRS}
    assert got == {key: value for key, value, _ in THEIRS}
    assert cfg.method.loss == method
    for key, value in METHOD_ARGS[method].items():
        assert cfg.method[key] == value, key


def test_the_preset_builds_their_optimizer(tmp_path):
    """(The settings' checks pass it under every method: tests/test_settings.py, every experiment preset.)"""
    import torch
    from hydra.utils import instantiate

    cfg = compose_config(["experiment=open_unlearning", "method=npo"], tmp_path / "run", tmp_path / "cache")
    opt = instantiate(cfg.method.optimizer)([torch.nn.Parameter(torch.zeros(2))])
    assert type(opt) is torch.optim.AdamW
    assert opt.defaults["lr"] == 1e-5 and opt.defaults["weight_decay"] == 0.01 and opt.defaults["eps"] == 1e-8
