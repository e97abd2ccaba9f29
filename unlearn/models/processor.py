"""Prompt format and image preprocessing for the embedded model, saved beside its weights.

Pillow + numpy only (torchvision has no CPU wheel here). Real models bring their own processor.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import PreTrainedTokenizerFast

from unlearn.models.checkpoint_files import CONFIG_NAME



class VLProcessor:
    def __init__(self, tokenizer: PreTrainedTokenizerFast, image_size: int, num_image_tokens: int,
                 mean: tuple[float, ...] = (0.5, 0.5, 0.5), std: tuple[float, ...] = (0.5, 0.5, 0.5)):
        self.tokenizer = tokenizer
        self.image_size = image_size
        self.num_image_tokens = num_image_tokens
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.image_token_id = tokenizer.convert_tokens_to_ids("<image>")
        # text -> token ids. An evaluation encodes each question once per option and per stage, and the
        # benchmark has a few thousand distinct strings: tokenising was a fifth of a cached run
        self._encoded: dict[str, tuple[int, ...]] = {}

    # --- text ---------------------------------------------------------------------------------
    def words(self, text: str) -> list[int]:
        ids = self._encoded.get(text)
        if ids is None:
            ids = self._encoded[text] = tuple(self.tokenizer.encode(text, add_special_tokens=False))
        return list(ids)

    def prompt_ids(self, question: str) -> list[int]:
        return self.words(f"question : {question} answer :")

    def answer_ids(self, answer: str) -> list[int]:
        return self.words(answer) + [self.tokenizer.eos_token_id]

    def prefix_ids(self, image) -> list[int]:
        """`image`: this row's pixel values, or None for a text-only row."""
        images = [self.image_token_id] * self.num_image_tokens if image is not None else []
        return [self.tokenizer.bos_token_id] + images

    def opening_ids(self, question: str, image) -> tuple[list[int], int]:
        """The prompt of a row's first question, and how many of its tokens come before the question."""
        prefix = self.prefix_ids(image)
        return prefix + self.prompt_ids(question), len(prefix)

    def image_ids(self, image) -> list[int]:
        """The tokens one image occupies (a prompt rendered elsewhere expands its `<image>` into these)."""
        return [self.image_token_id] * self.num_image_tokens

    family = "llava"  # a tiny LLaVA: evaluation protocols treat it as LLaVA-1.5
    adds_bos = True

    @property
    def stop_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    option_letters = ("a", "b", "c", "d")
    eager_images = True  # datasets preprocess every image once: 32 px portraits are a few KB

    def letter_question(self, question: str, options: tuple[str, ...]) -> str:
        opts = " ".join(f"{letter} : {text}" for letter, text in zip(self.option_letters, options))
        return f"{question} options : {opts}"

    def decode(self, ids) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    # --- images -------------------------------------------------------------------------------
    def pixel_values(self, images: list[Image.Image]) -> torch.Tensor:
        arrs = []
        for im in images:
            im = im.convert("RGB")
            if im.size != (self.image_size, self.image_size):
                im = im.resize((self.image_size, self.image_size), Image.BICUBIC)
            a = (np.asarray(im, dtype=np.float32) / 255.0 - self.mean) / self.std
            arrs.append(a.transpose(2, 0, 1))
        return torch.from_numpy(np.stack(arrs))

    # --- persistence --------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path) -> None:
        path = Path(path)
        self.tokenizer.save_pretrained(path)
        cfg = {"image_size": self.image_size, "num_image_tokens": self.num_image_tokens,
               "mean": self.mean.tolist(), "std": self.std.tolist()}
        (path / CONFIG_NAME).write_text(json.dumps(cfg, indent=2))

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "VLProcessor":
        path = Path(path)
        cfg = json.loads((path / CONFIG_NAME).read_text())
        return cls(PreTrainedTokenizerFast.from_pretrained(path), **cfg)
