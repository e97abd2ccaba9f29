"""experiment=manu_official holds every one of the authors' settings, and its real models' module patterns hook
exactly the Linears franciscoliu/MANU prune/prune_utility.py register_feedforward_hooks hooks.

The port in test_manu_official.py reads a constant PATTERNS, not `model.manu_official_modules`, and
test_official_preset_composes reads only alpha, batch size and layers: changing the preset's chunk_size, clamp,
retain_subset or unit, or the LLaVA-1.5-7B / Idefics2-8B `manu_official_modules`, passed every fast test."""

import re

import pytest
import torch

from unlearn.config import compose_config
from unlearn.manu.importance import REFERENCE_WEIGHTS


def test_official_preset_holds_every_official_setting(tmp_path):
    cfg = compose_config(["experiment=manu_official"], tmp_path, tmp_path)
    m = cfg.manu
    # prune_utility.py collect_feedforward_activations(chunk_size=10), clamp(min=-1e3, max=1e3), abs() > 1e-1
    assert (m.official.chunk_size, float(m.official.clamp), float(m.tau)) == (10, 1000.0, 0.1)
    # prune_incremental.py: retain loaders read num_batches=total_batches_forget_*; forward hooks (outputs);
    # every layer registered under the keys *_21..23 / *_29..31
    assert (m.official.retain_subset, m.official.unit, m.official.pooled_layers) == (True, "output", True)
    assert (m.selection, m.score, m.scope, m.weights, m.sequences) == ("official", "reference", "tower", None, "manu")
    # compute_combined_scores_incremental: weights = {"I_abs": 2.0, "I_freq": 0.0, "I_var": 2.0, "I_rms": 2.0}
    assert REFERENCE_WEIGHTS == {"abs": 2.0, "freq": 0.0, "var": 2.0, "rms": 2.0}


def _names(model):
    return [n for n, _ in model.named_modules()]


def _hooked(patterns, names):
    return {n: t for t, p in patterns.items() for n in names if re.fullmatch(p, n)}


def test_llava_official_modules_are_their_hooks(tmp_path):
    """register_feedforward_hooks (Llava): fc1 and fc2 of every vision layer, gate/up/down_proj of every language
    layer, at LLaVA-1.5-7B's depth (24 / 32 layers)."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    patterns = dict(compose_config(["experiment=manu_official"], tmp_path, tmp_path).model.manu_official_modules)
    vision = CLIPVisionConfig(hidden_size=8, intermediate_size=8, num_hidden_layers=24, num_attention_heads=2,
                              image_size=28, patch_size=14)
    text = LlamaConfig(hidden_size=8, intermediate_size=8, num_hidden_layers=32, num_attention_heads=2,
                       num_key_value_heads=2, vocab_size=64)
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(LlavaConfig(vision_config=vision, text_config=text, image_token_id=63))
    want = {f"model.vision_tower.encoder.layers.{i}.mlp.{p}": "vision" for i in range(24) for p in ("fc1", "fc2")}
    want |= {f"model.language_model.layers.{i}.mlp.{p}": "language" for i in range(32)
             for p in ("gate_proj", "up_proj", "down_proj")}
    assert _hooked(patterns, _names(model)) == want


def test_idefics2_official_modules_are_their_hooks(tmp_path):
    """register_feedforward_hooks (Idefics2): fc1 only on the vision model (fc2 commented out), gate/up/down_proj
    on the text model."""
    from transformers import Idefics2Config, Idefics2ForConditionalGeneration

    patterns = dict(compose_config(["experiment=manu_official", "model=idefics2_8b"], tmp_path,
                                   tmp_path).model.manu_official_modules)
    config = Idefics2Config(
        vision_config={"hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 27, "num_attention_heads": 2,
                       "image_size": 28, "patch_size": 14},
        perceiver_config={"hidden_size": 8, "resampler_n_latents": 4, "resampler_depth": 1, "resampler_n_heads": 2,
                          "resampler_head_dim": 4, "num_key_value_heads": 2},
        text_config={"model_type": "mistral", "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 32,
                     "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": 64})
    with torch.device("meta"):
        model = Idefics2ForConditionalGeneration(config)
    names = _names(model)
    want = {n: "vision" for n in names if re.fullmatch(r".*vision_model\.encoder\.layers\.\d+\.mlp\.fc1", n)}
    want |= {n: "language" for n in names if re.fullmatch(r".*text_model\.layers\.\d+\.mlp\.(gate|up|down)_proj", n)}
    assert len(want) == 27 + 3 * 32
    assert _hooked(patterns, names) == want
