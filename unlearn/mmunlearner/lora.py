"""The LoRA targets of the authors' LLaVA script (MLLMU_manifold.py, find_all_linear_names)."""

from __future__ import annotations

from torch import nn

SKIPPED = ("embeddings", "embed_tokens", "patch_embed")


def all_linear_targets(model: nn.Module) -> list[str]:
    """Every nn.Linear except lm_head and modules whose name contains embeddings / embed_tokens / patch_embed,
    each named by its last two name components (peft matches a name that equals or ends with '.' + key, so
    'self_attn.q_proj' adapts the vision tower's q_proj and the language model's alike). Sorted."""
    keys = set()
    for name, module in model.named_modules():
        if any(word in name for word in SKIPPED) or not isinstance(module, nn.Linear):
            continue
        parts = name.split(".")
        keys.add(parts[0] if len(parts) == 1 else ".".join(parts[-2:]))
    keys.discard("lm_head")
    return sorted(keys)


def peft_targets(model: nn.Module, target_modules):
    """`target_modules` as peft's LoraConfig takes it: `all_linear` resolved (`all_linear_targets`; peft would
    full-match the string and find no module), one regex string kept, any other sequence as a list."""
    if target_modules == "all_linear":
        return all_linear_targets(model)
    return target_modules if isinstance(target_modules, str) else list(target_modules)
