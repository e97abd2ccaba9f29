"""Every setting a run reads, set to a value of the wrong type or sign, is refused before the run (the checks train.py
makes before it imports torch, then the input paths pipeline.run checks), or is listed in EXEMPT with the reason it
is not. Why: each such setting found until now ran wrongly or failed late (a negative one-cycle max_lr taught 97 s
up the loss; finetune.frozen='abc' froze every parameter), so a setting added without a check fails here."""

from __future__ import annotations

import copy
import fnmatch
import functools
import math
import tempfile

import pytest
from omegaconf import DictConfig, OmegaConf

from unlearn.config import compose_config

CHANGED = ["changed"]  # the settings a configuration sets to another value than the default's, or adds
# a run's configuration, and the settings it is the one to exercise (key globs): each section under the run that
# reads it (LoRA, the relearning attack and MANU's scale mode are off by default, so their keys go unread there)
RUNS = {
    "default": ([], ["*"]),
    "ga": (["method=ga"], ["method.*", "model.unlearn_lr.ga"]),
    "grad_diff": (["method=grad_diff"], ["method.*", "model.unlearn_lr.grad_diff"]),
    "kl": (["method=kl"], ["method.*", "model.unlearn_lr.kl"]),
    "npo": (["method=npo"], ["method.*", "model.unlearn_lr.npo"]),
    "mmunlearner": (["method=mmunlearner"], ["method.*", "mmunlearner.*"]),
    "lora": (["method=ga", "method.lora.enabled=true"], ["method.lora.*"]),
    "mmunlearner_lora": (["method=mmunlearner", "mmunlearner.lora.enabled=true"], ["mmunlearner.lora.*"]),
    "relearn": (["eval.relearn.enabled=true"], ["eval.relearn.*"]),
    "scale": (["manu.prune.mode=scale", "manu.prune.factor=0.5"], ["manu.prune.*"]),
    "organism": (["experiment=organism"], ["model.base.*", "finetune.*"]),
    "manu_official": (["experiment=manu_official"], ["data.*", "model.*", "manu.*", "eval.*"]),
    # the presets of the official codes, each under a method that reads its own keys: the settings each sets apart
    # from the default's (CHANGED)
    "mllmu_baselines": (["experiment=mllmu_baselines", "method=npo", "method.reference_path=someone/oracle"],
                        CHANGED),
    "mmunlearner_baselines": (["experiment=mmunlearner_baselines", "method=npo",
                               "method.reference_path=someone/oracle"], CHANGED),
    "mmunlearner_official": (["experiment=mmunlearner_official"], CHANGED),
    "mmunlearner_clear_official": (["experiment=mmunlearner_clear_official"], CHANGED),
    "clear_baselines": (["experiment=clear_baselines", "method=grad_diff"], CHANGED),
    "open_unlearning": (["experiment=open_unlearning"], CHANGED),
    # the other shipped groups' values, on what each sets apart from the default's
    "fast": (["debug=fast"], CHANGED),
    "ddp_sim": (["trainer=ddp_sim"], CHANGED),
    "fsdp_sim": (["trainer=fsdp_sim", "method=ga"], ["trainer.*", "model.fsdp_layers"]),
    "idefics2": (["model=idefics2_8b"], CHANGED),
    "qwen2_vl": (["model=qwen2_vl_7b"], CHANGED),
    "finetune_mmunlearner": (["method=finetune", "finetune=mmunlearner", "model=llava_1_5_7b"], CHANGED),
    "evaluate": (["method=evaluate"], CHANGED),
}
NOT_AUDITED = ("paths", "hydra", "logger")  # where the run writes (checked as it claims them), Hydra's, a logger's


def lora_on(cfg, section: str) -> bool:
    return OmegaConf.select(cfg, f"{section}.lora.enabled") is True


def model_targets_read(cfg) -> bool:
    """Whether a LoRA section the run reads is on and takes the model's targets (its own target_modules null)."""
    return any(lora_on(cfg, s) and OmegaConf.select(cfg, f"{s}.lora.target_modules") is None
               for s in ("method", "mmunlearner", "finetune"))


def fisher_pass(cfg) -> bool:
    return cfg.method.name == "mmunlearner" and cfg.mmunlearner.get("apply_mask", True) is not False \
        and not cfg.mmunlearner.get("mask_path")


def unread_by(cfg, method_names: set[str]) -> bool:
    return cfg.method.name not in method_names and cfg.method.get("loss") not in method_names


def always(cfg) -> bool:
    return True


# (key glob, the wrong values it takes (None: every one), where (the changed config), why); each is one the run
# does not read there, one whose every value of its type is a value (a name, a path, a pattern a loaded model is
# matched against), or one a data loader refuses by name as the data loads, before any model
EXEMPT = [
    # not read where the condition holds; check_run_settings warns that an override of them is unread
    ("method.lora.*", None, lambda c: not lora_on(c, "method"), "read with method.lora.enabled=true (run lora)"),
    ("mmunlearner.lora.*", None, lambda c: not lora_on(c, "mmunlearner"), "the same (run mmunlearner_lora)"),
    ("finetune.lora.*", None, lambda c: not lora_on(c, "finetune"), "the same"),
    ("model.lora_target_modules", None, lambda c: not model_targets_read(c), "read by a LoRA section without "
                                                                            "target_modules of its own"),
    ("mmunlearner.fisher_labels", None, lambda c: not fisher_pass(c), "read by the Fisher pass, which "
                                                                      "apply_mask=false or a mask_path skips"),
    ("eval.relearn.*", None, lambda c: c.eval.relearn.enabled is False, "read by the attack (run relearn)"),
    ("manu.prune.factor", None, lambda c: c.manu.prune.mode != "scale", "read by manu.prune.mode=scale"),
    ("manu.official.*", None, lambda c: c.method.name != "manu" or c.manu.get("selection") != "official",
     "read by manu.selection=official (run manu_official)"),
    ("model.manu_alpha", None, lambda c: c.method.name != "manu" or not OmegaConf.is_interpolation(c.manu, "alpha"),
     "manu.alpha's default, where manu.alpha reads it"),
    *[(f"model.unlearn_lr.{m}", None, lambda c, m=m: c.method.name != m or not OmegaConf.is_interpolation(
        c.method.optimizer, "lr"), f"method.optimizer.lr's default under its own method (run {m})")
      for m in ("ga", "grad_diff", "kl", "npo")],
    # a preset's table of per-method values, read through method.* under its method
    *[(f"{preset}.*.{m}", None, lambda c, m=m: c.method.name != m, f"read as method.* under method={m}")
      for preset in ("mllmu_baselines", "mmunlearner_baselines") for m in ("ga", "grad_diff", "kl")],  # runs: npo
    ("data.eval_protocol", None, lambda c: not OmegaConf.is_interpolation(c.eval, "protocol"),
     "eval.protocol's default, where eval.protocol reads it"),
    ("data.mc_mode", None, lambda c: not OmegaConf.is_interpolation(c.eval, "mc_mode"),
     "eval.mc_mode's default, where eval.mc_mode reads it"),
    ("data.eval_scorer", None, lambda c: not OmegaConf.is_interpolation(c.eval, "scorer"),
     "eval.scorer's default, where eval.scorer reads it"),
    ("data.forget_modality", None, lambda c: "loss" not in c.method, "read by the gradient methods"),
    ("method.beta", None, lambda c: unread_by(c, {"npo"}), "NPO's"),
    ("method.reference_path", None, lambda c: unread_by(c, {"kl", "npo"}), "KL's and NPO's reference"),
    ("model.fsdp_layers", None, lambda c: "fsdp" not in str(c.trainer.get("strategy")), "read by trainer=fsdp"),
    # any value of its type is one: a name, a path or hub id, a callable's path Hydra imports as it builds it
    ("data.name", None, always, "a data config's name"),
    ("model.name", None, always, "a model config's name"),
    ("method.name", None, always, "a method of one's own names itself"),
    ("*._target_", None, always, "the callable Hydra builds, refused by Hydra by name where it builds it"),
    ("*._partial_", None, always, "Hydra's"),
    ("data.path", None, always, "a hub id or a local snapshot, read as the benchmark loads"),
    ("model.path", None, always, "a hub id, or a local checkpoint (checked where it is one: check_input_paths)"),
    ("model.processor_path", None, always, "the same"),
    ("method.reference_path", None, always, "the same"),
    ("model.base.shipped", None, always, "a directory; the shipped base is rebuilt where it is not one"),
    ("model.template.prefix", ["zzz_bad"], always, "any text"),
    ("model.template.after_image", ["zzz_bad"], always, "any text"),
    ("model.template.text_prefix", ["zzz_bad"], always, "any text"),
    ("model.template.stop", ["abc", "zzz_bad"], always, "a token"),
    ("model.*image_processor.*", None, always, "passed to transformers' image processor as written"),
    ("model.tokenizer.*", None, always, "passed to transformers' tokenizer as written"),
    ("model.mlp_modules.*", ["zzz_bad"], always, "a pattern: one that matches no module is refused once the model "
                                                 "is loaded, before the before-evaluation (MANU's hooks)"),
    ("model.manu_official_modules.*", ["zzz_bad"], always, "the same"),
    ("model.param_groups.*", ["zzz_bad"], always, "the same (MMUnlearner's groups)"),
    ("mmunlearner.eligible", ["abc", "zzz_bad"], always, "the same"),
    ("model.lora_target_modules", ["abc"], always, "the same"),
    ("*.lora.target_modules", ["abc", "zzz_bad"], always, "a pattern peft matches; one that matches none is refused "
                                                          "there"),
    # a fraction is a value of these
    ("model.manu_alpha", [1.5], always, "a percentage"),
    ("manu.alpha", [1.5], always, "a percentage"),
    ("eval.shared_cache_gb", [1.5], always, "gigabytes"),
    ("trainer.devices", [-1], always, "Lightning's every device"),
    ("*.lora.alpha", [1.5], always, "LoRA's scale numerator, a number"),
    # refused by name where the data loads (the loaders' own checks), before any model is built or taught
    ("data.forget_split", None, always, "the data's split names"),
    ("data.retain_images", None, always, "CLEAR's loader's"),
    ("data.eval_rows", None, always, "CLEAR's loader's"),
    ("data.spec.*", None, lambda c: c.data.spec.get("_target_") is None, "a loader's spec (MLLMU-Bench, CLEAR)"),
]


def leaves(node: DictConfig, prefix: str = ""):
    for k in node.keys():
        key = f"{prefix}{k}"
        if OmegaConf.is_interpolation(node, k):  # its source is audited where it is set
            continue
        value = node[k]
        if isinstance(value, DictConfig):
            yield from leaves(value, key + ".")
        else:
            yield key, value


def wrong_values(value) -> list:
    if isinstance(value, bool):
        return ["abc"]
    if isinstance(value, int):
        return ["abc", -1, 1.5]
    if isinstance(value, float):
        return ["abc", -1.0, math.nan]
    if isinstance(value, str):
        return ["zzz_bad", -1]
    return ["abc", -1]  # null, a list


def exemptions(cfg, key: str, value) -> set[int]:
    """The EXEMPT entries (by index) that let `key=value` pass; `cfg`: the config with `key` changed to `value`."""
    return {i for i, (glob, values, where, _) in enumerate(EXEMPT) if fnmatch.fnmatchcase(key, glob)
            and (values is None or any(repr(value) == repr(v) for v in values)) and where(cfg)}


def refused(cfg) -> bool:
    from unlearn.before_run import check_settings_before_run
    from unlearn.settings import check_input_paths

    try:
        check_settings_before_run(cfg, here=False, launcher=False)
        check_input_paths(cfg)
    except (ValueError, FileNotFoundError):
        return True
    return False


def composed(overrides) -> DictConfig:
    tmp = tempfile.mkdtemp()
    return compose_config([*overrides, "logger=none"], f"{tmp}/run", f"{tmp}/cache")


@functools.lru_cache(maxsize=None)
def default_leaves() -> dict:
    return {k: repr(v) for k, v in leaves(composed([]))}


def audited(key: str, value, globs) -> bool:
    if globs is CHANGED:
        return default_leaves().get(key) != repr(value)
    return any(fnmatch.fnmatchcase(key, g) for g in globs)


@functools.lru_cache(maxsize=None)
def audit(run: str) -> tuple[tuple[str, ...], frozenset]:
    """The wrong values of `run`'s settings that pass the checks and no exemption names, and the exemptions used."""
    overrides, globs = RUNS[run]
    base = composed(overrides)
    assert not refused(copy.deepcopy(base)), f"{run}: the shipped config itself is refused"
    passed, used = [], set()
    for key, value in leaves(base):
        if key.split(".")[0] in NOT_AUDITED or not audited(key, value, globs):
            continue
        for wrong in wrong_values(value):
            cfg = copy.deepcopy(base)
            OmegaConf.update(cfg, key, wrong, merge=False)
            if not refused(cfg):
                why = exemptions(cfg, key, wrong)
                used |= why
                if not why:
                    passed.append(f"{key}={wrong!r} (shipped {value!r})")
    return tuple(passed), frozenset(used)


def passed_unchecked(run: str) -> list[str]:
    return list(audit(run)[0])


@pytest.mark.parametrize("run", sorted(RUNS))
def test_a_wrong_value_of_every_setting_is_refused_before_the_run(run):
    passed = passed_unchecked(run)
    assert not passed, (f"under {RUNS[run][0]}, these wrong values pass the checks: {passed}; refuse them by key "
                        "(unlearn/settings.py), or list the key in EXEMPT with the reason")


def test_every_exemption_lets_some_wrong_value_pass():
    """An exemption no audited value needs (its setting now checked, or gone) is taken out, so that the list says
    what is left unchecked. After the runs above in one process (the suite runs this module in one), it reads their
    audits again for nothing."""
    used = set().union(*(audit(run)[1] for run in RUNS))
    unused = [EXEMPT[i][:2] for i in range(len(EXEMPT)) if i not in used]
    assert not unused, f"exemptions no audited value needs: {unused}"


def test_the_trainer_values_are_lightnings():
    """The precisions, accelerators and strategies the checks accept without Lightning's import are Lightning's own,
    and FSDP's sharding strategies torch's."""
    import typing

    from lightning.fabric.connector import _PRECISION_INPUT
    from lightning.pytorch.accelerators import AcceleratorRegistry

    from lightning.pytorch.strategies import StrategyRegistry

    from unlearn.trainer_keys import ACCELERATORS, PRECISIONS, STRATEGIES

    lightnings = {str(v) for group in typing.get_args(_PRECISION_INPUT) for v in typing.get_args(group)}
    assert set(PRECISIONS) == lightnings
    assert set(ACCELERATORS) == {"auto", "gpu", *AcceleratorRegistry.available_accelerators()}  # gpu: its alias
    assert set(STRATEGIES) == {"auto", *StrategyRegistry.available_strategies()}
    from torch.distributed.fsdp import ShardingStrategy

    from unlearn.settings import FSDP_SHARDING

    assert set(FSDP_SHARDING) == {s.name for s in ShardingStrategy}
