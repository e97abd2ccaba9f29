"""The embedded model: LLaVA architecture (CLIP tower + projector + Llama) at toy size, random init.

Built from transformers configs so it saves and loads exactly like a real LLaVA checkpoint.
"""

from __future__ import annotations

import torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

from unlearn.data.people import vocabulary
from unlearn.models.processor import VLProcessor
from unlearn.models.tiny_llava_spec import TinyLlavaSpec  # model.build.spec's _target_ names it here
from unlearn.models.tokenizer import build_word_tokenizer


def build_tiny_llava(spec: TinyLlavaSpec) -> tuple[LlavaForConditionalGeneration, VLProcessor]:
    tok = build_word_tokenizer(vocabulary())
    processor = VLProcessor(tok, spec.image_size, spec.num_image_tokens)
    vision = CLIPVisionConfig(
        hidden_size=spec.vision_hidden, intermediate_size=spec.vision_intermediate,
        num_hidden_layers=spec.vision_layers, num_attention_heads=spec.vision_heads,
        image_size=spec.image_size, patch_size=spec.patch_size, num_channels=3,
    )
    text = LlamaConfig(
        vocab_size=len(tok), hidden_size=spec.text_hidden, intermediate_size=spec.text_intermediate,
        num_hidden_layers=spec.text_layers, num_attention_heads=spec.text_heads,
        num_key_value_heads=spec.text_heads, max_position_embeddings=spec.max_positions,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_token_index=processor.image_token_id,
        image_seq_length=spec.num_image_tokens, vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    with torch.random.fork_rng():
        torch.manual_seed(spec.init_seed)
        model = LlavaForConditionalGeneration(config)
    gc = model.generation_config
    gc.bos_token_id, gc.eos_token_id, gc.pad_token_id = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id
    return model, processor
