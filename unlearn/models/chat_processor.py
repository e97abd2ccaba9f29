"""Prompts and images for real checkpoints: the tokenizer and image processor a model ships with, plus a
chat template from the model config (`model.template`).

The stock `transformers` processor classes are not used: Qwen2-VL's needs torchvision for its video
processor, which has no CPU wheel here. What they add over the tokenizer and image processor is the
expansion of one image placeholder into the model's image tokens; `image_block` does that per family,
with the same rules (checked against the stock processors in tests/test_model_adapters.py).

The prompt up to the answer is tokenized as one string, its image placeholder expanded, as the template's
rendered string is read (`opening_ids`; until 2026-12-05 piece by piece, which put an extra '\u2581' at each
boundary on LLaVA's and Idefics2's SentencePiece tokenizers). The answer is its own piece, so its tokens, which
carry the loss, are exactly those of the answer.
"""

from __future__ import annotations

import functools

from dataclasses import dataclass
from pathlib import Path

import torch

from unlearn.models.chat_template import FAMILIES, MROPE_FAMILIES, ChatTemplate
from unlearn.models.prompt_ids import IMAGE_PLACEHOLDER, encode_prompt

MM_TOKEN_TYPES = "mm_token_type_ids"


@dataclass
class ImageInput:
    """One image as the model takes it: its placeholder token ids and the image processor's tensors
    (leading dimension per image, so a batch is their concatenation)."""

    block: list[int]
    tensors: dict[str, torch.Tensor]
    image_token_id: int
    token_types: bool = False  # the model wants `mm_token_type_ids` (Qwen2-VL's M-RoPE)


def image_block(family: str, config, tokenizer, image_processor, tensors: dict) -> tuple[list[int], int]:
    """The token ids one image occupies in the prompt, and the id the model replaces by image features."""
    if family == "llava":
        v = config.vision_config
        n = (v.image_size // v.patch_size) ** 2 + (config.vision_feature_select_strategy == "full")
        return [config.image_token_id] * n, config.image_token_id
    if family == "idefics2":
        fake = tokenizer.convert_tokens_to_ids("<fake_token_around_image>")
        n_latents = config.perceiver_config.resampler_n_latents
        crops = tensors["pixel_values"].shape[1]  # 5 with image splitting, else 1
        return [fake] + ([config.image_token_id] * n_latents + [fake]) * crops, config.image_token_id
    if family in MROPE_FAMILIES:
        n = int(tensors["image_grid_thw"][0].prod()) // image_processor.merge_size ** 2
        block = [config.vision_start_token_id] + [config.image_token_id] * n + [config.vision_end_token_id]
        return block, config.image_token_id
    raise ValueError(f"model type {family!r} has no image adapter; supported: {FAMILIES}")


class ChatProcessor:
    """Same interface as the embedded `VLProcessor`: prefix/prompt/answer ids, images, decode."""

    def __init__(self, tokenizer, image_processor, config, template: ChatTemplate):
        self.tokenizer, self.image_processor, self.config = tokenizer, image_processor, config
        self.family = config.model_type
        self.template = template
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        stop = template.stop or tokenizer.eos_token
        self.stop_token_id = tokenizer.convert_tokens_to_ids(stop)
        if self.stop_token_id is None or self.stop_token_id == tokenizer.unk_token_id:
            raise ValueError(f"model.template.stop={stop!r} is not a token of this tokenizer")
        if self.family not in FAMILIES:
            raise ValueError(f"model type {self.family!r} has no image adapter; supported: {FAMILIES}")

    # --- text ---------------------------------------------------------------------------------
    def words(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False) if text else []

    def _opening(self, image: ImageInput | None) -> tuple[str, list]:
        """The template's text before the question (its image placeholder where the row has an image)."""
        t = self.template
        if image is None:
            return (t.prefix if t.text_prefix is None else t.text_prefix), []
        return t.prefix + IMAGE_PLACEHOLDER + t.after_image, [image]

    def prefix_ids(self, image: ImageInput | None) -> list[int]:
        """bos, the template's prefix and the image, tokenized as one string (what precedes a row's question)."""
        return encode_prompt(self, *self._opening(image))

    def prompt_ids(self, question: str) -> list[int]:
        """A question after an earlier answer (a later turn of a row)."""
        return self.words(self.template.question.format(question=question))

    def opening_ids(self, question: str, image: ImageInput | None) -> tuple[list[int], int]:
        """The prompt of a row's first question (bos, prefix, image, question), tokenized as one string, and how
        many of its tokens come before the question: those it shares with the prompt's text before the question
        tokenized alone (a boundary token the two pieces merge into, "USER:" '\u2581What', goes to the question)."""
        opening, images = self._opening(image)
        ids = encode_prompt(self, opening + self.template.question.format(question=question), images)
        before = encode_prompt(self, opening, images)
        shared = next((i for i, (a, b) in enumerate(zip(ids, before)) if a != b), min(len(ids), len(before)))
        return ids, shared

    def image_ids(self, image: ImageInput) -> list[int]:
        """The tokens one image occupies (a prompt rendered elsewhere expands its `<image>` into these)."""
        return image.block

    @property
    def adds_bos(self) -> bool:
        return self.template.bos

    def answer_ids(self, answer: str) -> list[int]:
        """The answer's tokens as the whole row's string tokenizes them after its prompt, and the stop token: the
        answer is tokenized after the question template's closing text ("ASSISTANT:"), which is then taken off.
        Why: a tokenizer whose normaliser prepends '\u2581' to every text (LLaVA-1.5's tokenizer.json, which this
        transformers loads as it is) reads " She" alone as '\u2581\u2581' 'She' where the row's string has
        '\u2581She' (until 2026-12-06 every LLaVA answer, taught or scored, began with an extra token)."""
        text = self.template.answer.format(answer=answer)
        anchor = self._answer_anchor
        if anchor:
            head, ids = self._anchor_ids, self.words(anchor + text)
            if ids[:len(head)] == head:  # the closing text kept its tokens: what follows is the answer's
                return ids[len(head):] + [self.stop_token_id]
        return self.words(text) + [self.stop_token_id]

    @functools.cached_property
    def _answer_anchor(self) -> str:
        """The question template's text after the question ("{question} ASSISTANT:" -> " ASSISTANT:")."""
        return self.template.question.split("{question}", 1)[-1] if "{question}" in self.template.question else ""

    @functools.cached_property
    def _anchor_ids(self) -> list[int]:
        return self.words(self._answer_anchor)

    option_letters = ("A", "B", "C", "D")
    eager_images = False  # datasets keep images and preprocess them on access (megabytes each at 336 px+)

    def letter_question(self, question: str, options: tuple[str, ...]) -> str:
        return self.template.letter_question.format(question=question, **dict(zip("ABCD", options)))

    def decode(self, ids) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    # --- images -------------------------------------------------------------------------------
    def pixel_values(self, images) -> list[ImageInput]:
        out = []
        for im in images:
            t = dict(self.image_processor(images=[im.convert("RGB")], return_tensors="pt"))
            block, image_id = image_block(self.family, self.config, self.tokenizer, self.image_processor, t)
            out.append(ImageInput(block, t, image_id, token_types=self.family in MROPE_FAMILIES))
        return out

    # --- persistence --------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path) -> None:
        self.tokenizer.save_pretrained(path)
        self.image_processor.save_pretrained(path)


def batch_images(images: list[ImageInput], input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """Concatenate per-image tensors (zero-padding spatial sizes that differ, with their pixel masks)."""
    out: dict[str, torch.Tensor] = {}
    for key in images[0].tensors:
        parts = [im.tensors[key] for im in images]
        if len({p.shape[1:] for p in parts}) > 1:
            dims = [max(p.shape[d] for p in parts) for d in range(1, parts[0].dim())]
            padded = []
            for p in parts:
                q = p.new_zeros((p.shape[0], *dims))
                q[tuple(slice(0, s) for s in p.shape)] = p
                padded.append(q)
            parts = padded
        out[key] = torch.cat(parts)
    if images[0].token_types:
        out[MM_TOKEN_TYPES] = (input_ids == images[0].image_token_id).int()
    return out
