"""Every preset in configs/experiment/ composes, resolves, and lands its values (present and future files)."""

import copy

import pytest
import torch
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
        if isinstance(value, str) and "${" in value:  # a per-method lookup: resolves (checked where it is used)
            continue
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


def test_mllmu_baselines_lora_reaches_what_theirs_reaches(tmp_path, tiny_model):
    """Their find_all_linear_names (baselines/GA.py) collects the last name component of every Linear outside the
    vision tower and projector, drops lm_head, and hands peft those suffixes, which peft matches anywhere: the
    vision tower's attention projections with the same names get adapters too."""
    from unlearn.methods.gradient import with_lora

    model = tiny_model[0]
    cfg = compose_config(["experiment=mllmu_baselines", "model=tiny_llava"], tmp_path, tmp_path / "cache")
    linears = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    suffixes = {n.rsplit(".", 1)[-1] for n in linears if "language_model" in n} - {"lm_head"}
    theirs = {n for n in linears if n.rsplit(".", 1)[-1] in suffixes}
    assert any("vision" in n for n in theirs)  # the tiny model names its vision attention like theirs
    adapted, _ = with_lora(copy.deepcopy(model), cfg.method.lora, cfg.model.lora_target_modules, need_reference=False)
    ours = {n.split(".lora_A")[0].removeprefix("base_model.model.") for n, _ in adapted.named_parameters()
            if ".lora_A." in n}
    assert ours == theirs
    assert cfg.method.lora.dropout == 0.05 and cfg.method.lora.init == "gaussian"


@pytest.mark.parametrize("method,alpha,lr_decay,has_retain", [("ga", None, "linear", False),
                                                              ("grad_diff", 1.0, None, True),
                                                              ("kl", 1.0, None, True), ("npo", 0.0, "linear", False)])
def test_mllmu_baselines_per_method_values(method, alpha, lr_decay, has_retain, tmp_path):
    """NPO.py has no retain term (the preset once set alpha 1.0 for every method, which made MLLMU's NPO into
    NPO+RT); GA.py and NPO.py decay the lr every batch, GA_Difference.py and KL_Min.py keep it through the epoch."""
    from unlearn.methods.gradient import GradientUnlearning

    cfg = compose_config(["experiment=mllmu_baselines", f"method={method}"], tmp_path, tmp_path / "cache")
    OmegaConf.resolve(cfg)
    assert cfg.method.schedule == "sequential" and cfg.method.lr_decay == lr_decay
    if alpha is not None:
        assert cfg.method.alpha == alpha
    module = GradientUnlearning(torch.nn.Linear(2, 2), cfg.method.loss, torch.optim.SGD, alpha=cfg.method.alpha,
                                reference=torch.nn.Linear(2, 2))
    assert module.has_retain_term == has_retain
    assert cfg.model.dtype == "float32" and cfg.trainer.precision == "32-true"
    assert cfg.trainer.gradient_clip_val is None and cfg.method.optimizer.eps == 1e-6
    assert cfg.method.optimizer._target_ == "unlearn.optim.HFAdamW"
    assert cfg.method.start_precision == "float16"  # every script's from_pretrained(torch_dtype=torch.float16)


@pytest.mark.parametrize("method,schedule,lr_decay,resize,start,reference", [
    ("ga", "sequential", "linear", "tokenizer", "float16", None),
    ("grad_diff", "interleaved", None, "tokenizer", "float16", None),
    ("kl", "interleaved", None, "tokenizer", "bfloat16", None),
    ("npo", "sequential", "linear", None, "float16", "float16")])
@pytest.mark.parametrize("preset", ["mmunlearner_baselines", "mmunlearner_baselines_qwen2_vl"])
def test_mmunlearner_baselines_per_method_values(preset, method, schedule, lr_decay, resize, start, reference,
                                                 tmp_path):
    """MMUnlearner's MLLMU_GA_Diff.py and MLLMU_KL_Min.py interleave forget steps into the retain pass and never
    decay the lr within their epoch; MLLMU_GA.py and MLLMU_NPO.py walk the forget data alone with a linear decay;
    on LLaVA KL_Min loads in bfloat16, the others in float16, all upcast to float32; on Qwen2-VL all load, and
    train, in bfloat16; NPO's oracle is float16."""
    from unlearn.methods.gradient import GradientUnlearning
    from unlearn.settings import check_run_settings

    cfg = compose_config([f"experiment={preset}", f"method={method}"], tmp_path, tmp_path / "cache")
    OmegaConf.resolve(cfg)
    m = cfg.method
    qwen = preset.endswith("qwen2_vl")
    assert (m.schedule, m.lr_decay, m.resize_embeddings, m.start_precision, m.reference_dtype) == (
        schedule, lr_decay, resize, None if qwen else start, reference)
    assert cfg.model.dtype == ("bfloat16" if qwen else "float32") and cfg.model.name.startswith(
        "qwen2_vl" if qwen else "llava")
    assert m.reference_required == (method == "npo")
    # their transformers (4.45-4.49) named LLaVA's head language_model.lm_head, which their target rule keeps
    assert m.lora.target_modules == ("all_linear" if qwen else "all_linear_and_head")
    # MLLMU_GA.py: train_collate_clear_ansonly; the others: train_collate_mllmu_ansonly
    assert m.answer_ids == ("without_specials" if method == "ga" else "without_first")
    assert m.optimizer.lr == 1e-5 and m.batch_size == 4 and m.epochs == 1
    module = GradientUnlearning(torch.nn.Linear(2, 2), m.loss, torch.optim.SGD, alpha=m.alpha,
                                reference=torch.nn.Linear(2, 2))
    assert module.has_retain_term == (schedule == "interleaved")  # GA and NPO: no retain term, as theirs
    assert cfg.trainer.gradient_clip_val is None and cfg.trainer.precision == "32-true"
    assert cfg.eval.protocol == cfg.eval.scorer == "mmunlearner" and cfg.eval.few_shot != qwen
    if method != "npo":  # NPO refuses to start without its oracle (method.reference_path)
        check_run_settings(cfg)


@pytest.mark.parametrize("method,schedule,lr_decay,resize,lora", [
    ("ga", "sequential", "linear", "tokenizer", False), ("grad_diff", "interleaved", None, None, True),
    ("kl", "interleaved", None, "tokenizer", True), ("npo", "sequential", "linear", None, True)])
def test_mmunlearner_clear_baselines_per_method_values(method, schedule, lr_decay, resize, lora, tmp_path):
    """MMUnlearner's CLEAR scripts on Qwen2-VL: CLEAR_GA.py trains the whole bf16 model, the others LoRA; GA and KL
    cut the vocabulary, GA_Diff (outside LLaVA) and NPO do not; every script reads train_collate_clear_ansonly."""
    from unlearn.settings import check_run_settings

    cfg = compose_config(["experiment=mmunlearner_clear_baselines", f"method={method}"], tmp_path, tmp_path / "cache")
    OmegaConf.resolve(cfg)
    m = cfg.method
    assert (m.schedule, m.lr_decay, m.resize_embeddings, m.lora.enabled) == (schedule, lr_decay, resize, lora)
    assert (m.sequences, m.answer_only, m.answer_ids) == ("mmunlearner", True, "without_specials")
    assert m.reference_dtype == ("float16" if method == "npo" else None) and m.optimizer.lr == 1e-5
    assert cfg.model.dtype == "bfloat16" and cfg.data.spec.train_pairs == "clear"
    if method != "npo":
        check_run_settings(cfg)


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


@pytest.mark.parametrize("experiment", ["mllmu_baselines", "mmunlearner_official", "mmunlearner_baselines"])
@pytest.mark.parametrize("trainer", ["gpu", "ddp"])
def test_official_presets_compute_in_float32_on_any_trainer(experiment, trainer, tmp_path):
    """GA.py and MLLMU_manifold.py run Accelerator() without mixed precision: the presets pin 32-true over the
    bf16-mixed that trainer=gpu and trainer=ddp would otherwise bring."""
    cfg = compose_config([f"experiment={experiment}", f"trainer={trainer}"], tmp_path, tmp_path / "cache")
    assert cfg.trainer.precision == "32-true" and cfg.model.dtype == "float32"


@pytest.mark.parametrize("trainer", ["gpu", "ddp"])
def test_manu_official_hooks_float16_outputs_on_any_trainer(trainer, tmp_path):
    """prune_incremental.py runs its float16 model under Accelerator() without mixed precision; bf16-mixed's
    autocast, which trainer=gpu and trainer=ddp bring, would make the hooked outputs bfloat16."""
    cfg = compose_config(["experiment=manu_official", f"trainer={trainer}"], tmp_path, tmp_path / "cache")
    assert cfg.trainer.precision == "32-true" and cfg.model.dtype == "float16"
