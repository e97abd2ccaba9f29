"""Every preset in configs/experiment/ composes, resolves, and lands its values (present and future files)."""

import pytest
import yaml
from omegaconf import OmegaConf

from unlearn.config import CONFIG_DIR, compose_config

PRESETS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))


def _leaves(tree, prefix=""):
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def test_there_are_presets():
    assert {"mmunlearner_official", "mllmu_baselines"} <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_composes_resolves_and_sets_its_values(name, tmp_path):
    path = CONFIG_DIR / "experiment" / f"{name}.yaml"
    text = path.read_text()
    assert text.startswith("# @package _global_"), f"{path}: a preset must be global"
    cfg = compose_config([f"experiment={name}"], tmp_path, tmp_path / "cache")
    OmegaConf.resolve(cfg)
    raw = yaml.safe_load(text)
    for group in raw.pop("defaults", []):
        (key, choice), = group.items()
        assert cfg[key.split("/")[-1]].name == choice or key.endswith("method"), (name, key)
    for key, value in _leaves(raw):
        assert OmegaConf.select(cfg, key) == value, f"{name}: {key}"
    # every value names where it comes from, on its line or in a comment line just above
    lines = text.splitlines()
    for before, line in zip([""] + lines, lines):
        if ":" in line and not line.lstrip().startswith(("#", "-")) and not line.rstrip().endswith(":"):
            assert "#" in line or before.lstrip().startswith("#"), f"{name}: no source comment on {line.strip()!r}"


def test_command_line_method_wins_over_the_preset(tmp_path):
    cfg = compose_config(["experiment=mllmu_baselines", "method=npo"], tmp_path, tmp_path / "cache")
    assert cfg.method.loss == "npo" and cfg.method.beta == 0.4 and cfg.method.npo_log_ratio == "token_mean"
    assert cfg.method.lora.enabled and cfg.method.lora.r == 16 and cfg.method.optimizer.lr == 2e-5


def test_mllmu_baselines_lora_reaches_only_the_language_model(tmp_path, tiny_model):
    from unlearn.methods.gradient import with_lora

    cfg = compose_config(["experiment=mllmu_baselines", "model=tiny_llava"], tmp_path, tmp_path / "cache")
    model, _ = with_lora(tiny_model[0], cfg.method.lora, cfg.model.lora_target_modules, need_reference=False)
    adapted = {n.split(".lora_A")[0] for n, _ in model.named_parameters() if ".lora_A." in n}
    assert adapted and all("language_model" in n for n in adapted)
    assert {n.rsplit(".", 1)[-1] for n in adapted} == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                        "up_proj", "down_proj"}


@pytest.mark.parametrize("method", ["ga", "grad_diff", "kl", "npo"])
def test_gradient_lr_follows_the_models_equal_cost_lr(method, tmp_path):
    def lr(*overrides):
        cfg = compose_config([f"method={method}", *overrides], tmp_path, tmp_path / "cache")
        return cfg.method.optimizer.lr, cfg

    value, cfg = lr()
    assert value == cfg.model.unlearn_lr[method]  # the embedded model's own lr for this method
    organism, organism_cfg = lr("experiment=organism")  # the organism's own equal-cost lr, not the default's
    assert organism_cfg.model.name == "tiny_llava_base" and organism == organism_cfg.model.unlearn_lr[method]
    assert lr("model=llava_1_5_7b")[0] == 2e-5  # the 7-8B models: MLLMU-Bench's baseline lr
    assert lr("model=qwen2_vl_7b")[0] == 2e-5 and lr("model=idefics2_8b")[0] == 2e-5
    assert lr("model=llava_1_5_7b", "~model.unlearn_lr")[0] == 5e-4  # a model without unlearn_lr: the fallback
    assert lr("method.optimizer.lr=3e-3")[0] == 3e-3  # a given lr wins (the frontier's sweep)
    assert lr("experiment=mllmu_baselines")[0] == 2e-5  # the authors' preset wins
    assert lr(f"model.unlearn_lr.{method}=7e-5")[0] == 7e-5
