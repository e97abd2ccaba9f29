"""The LoRA targets of the authors' scripts (MMUnlearner's MLLMU_manifold.py and baselines, find_all_linear_names)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the checks before a run read lora_targets and RULES before torch's import (unlearn/before_run.py)
    from torch import nn

SKIPPED = ("embeddings", "embed_tokens", "patch_embed")
# target_modules values that name a rule rather than modules; each stands alone
RULES = ("all_linear", "all_linear_and_head")


def all_linear_targets(model: nn.Module, head: bool = False) -> list[str]:
    """Every nn.Linear except lm_head and modules whose name contains embeddings / embed_tokens / patch_embed,
    each named by its last two name components (peft matches a name that equals or ends with '.' + key, so
    'self_attn.q_proj' adapts the vision tower's q_proj and the language model's alike). Sorted.

    `head`: keep lm_head. Their function removes a bare 'lm_head' only, and their scripts import
    transformers.AdamW (MLLMU_manifold.py:15, SFRon.py:8), which transformers 4.50 removed: under the 4.45-4.49
    layout LLaVA's head is `language_model.lm_head`, whose last two components survive the removal, so their
    LLaVA runs adapt the head (Qwen2-VL's head was a bare `lm_head` there, and is removed)."""
    from torch import nn

    keys = set()
    for name, module in model.named_modules():
        if any(word in name for word in SKIPPED) or not isinstance(module, nn.Linear):
            continue
        parts = name.split(".")
        keys.add(parts[0] if len(parts) == 1 else ".".join(parts[-2:]))
    if not head:
        keys.discard("lm_head")
    elif not isinstance(getattr(model, "lm_head", None), nn.Linear):
        raise ValueError("lora.target_modules=all_linear_and_head: the model has no lm_head Linear to adapt")
    return sorted(keys)


def peft_targets(model: nn.Module, target_modules):
    """`target_modules` as peft's LoraConfig takes it: `all_linear` and `all_linear_and_head` resolved
    (`all_linear_targets`; peft would full-match the string and find no module), one regex string kept, any other
    sequence as a list."""
    if target_modules in RULES:
        return all_linear_targets(model, head=target_modules == "all_linear_and_head")
    return target_modules if isinstance(target_modules, str) else list(target_modules)


def lora_targets(lora_cfg, model_cfg, key: str):
    """The modules a LoRA section (`key`: finetune.lora, method.lora, mmunlearner.lora) adapts: its own
    target_modules, or where null (empty) the model's `model.lora_target_modules`; where that is missing too (a model
    config of one's own), refused naming both keys. The one place that fallback is written: until the forty-third
    session each caller wrote it, and a model config without the key failed with OmegaConf's missing-key error, or
    peft's `'NoneType' object is not iterable`, in the early check."""
    given = lora_cfg.get("target_modules")
    if given:
        return given
    targets = model_cfg.get("lora_target_modules")
    if not targets:
        raise ValueError(f"{key}.target_modules is {'empty' if given is not None else 'null'} and "
                         f"model.lora_target_modules is "
                         f"{'missing from' if targets is None else 'empty in'} model={model_cfg.get('name')}'s config: "
                         f"name the modules to adapt in one of them (e.g. {key}.target_modules=[q_proj,v_proj], one "
                         f"regex, or all_linear)")
    return targets


def adapted_modules(model: nn.Module, targets) -> list[str]:
    """The names of the modules of `model` that LoRA adapts for `targets` (as `lora_targets` gives them), by
    peft's own matcher on the unwrapped model: what get_peft_model will wrap."""
    from peft import LoraConfig
    from peft.tuners.tuners_utils import check_target_module_exists

    config = LoraConfig(target_modules=peft_targets(model, targets))
    return [name for name, _ in model.named_modules() if check_target_module_exists(config, name)]


def check_targets(model: nn.Module, lora_cfg, model_cfg, key: str) -> None:
    """What get_peft_model refuses as the adapters are made (no module matches the targets), checked on the
    unwrapped model with peft's own matcher, before the before-evaluation (the methods' check_before_evaluation):
    the gradient methods, MMUnlearner and method=finetune make their adapters after it. `lora_cfg`: the section
    `key` (nothing to check unless enabled); its targets as `lora_targets` reads them from it and `model_cfg`."""
    if not lora_cfg or not lora_cfg.get("enabled"):
        return
    from omegaconf import OmegaConf

    targets = lora_targets(lora_cfg, model_cfg, key)
    if not adapted_modules(model, targets):
        shown = OmegaConf.to_container(targets) if OmegaConf.is_config(targets) else targets
        given = lora_cfg.get("target_modules")
        raise ValueError(f"{f'{key}.target_modules' if given else 'model.lora_target_modules'}={shown!r} matches no "
                         "module of this model (peft refuses it as the adapters are made): give this model's module "
                         "names")
