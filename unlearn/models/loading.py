"""Load and save a model with its processor: the same path for the embedded model and real checkpoints."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch
from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer

from unlearn.models.chat_processor import ChatProcessor, ChatTemplate
from unlearn.models.processor import CONFIG_NAME, VLProcessor

log = logging.getLogger(__name__)


class CheckpointError(FileNotFoundError):
    pass


def load_model(path: str | Path, dtype: str = "float32", key: str = "model.path",
               template: Mapping | None = None, attn_implementation: str | None = None,
               image_processor: Mapping | None = None):
    """`path` is a local directory or a hub id; a missing local directory names `key`.

    A directory with `vl_processor.json` is the embedded model; anything else is a real checkpoint, read
    with its own tokenizer and image processor (settings overridden by `image_processor`, e.g.
    `{do_image_splitting: false}`) and prompted with `template` (`model.template`).
    """
    p = Path(str(path)).expanduser()
    looks_local = p.is_absolute() or str(path).startswith(".") or p.exists()
    if looks_local and not (p / "config.json").is_file():
        raise CheckpointError(f"{key}={path}: no checkpoint there (expected a directory with config.json)")
    if not hasattr(torch, str(dtype)):
        raise ValueError(f"model.dtype={dtype!r} is not a torch dtype (float32, bfloat16, float16)")
    kwargs = {"dtype": getattr(torch, dtype)}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = AutoModelForImageTextToText.from_pretrained(str(path), **kwargs)
    if looks_local and (p / CONFIG_NAME).is_file():
        return model, VLProcessor.from_pretrained(p)
    if template is None:
        raise CheckpointError(f"{key}={path} is a real checkpoint: its model config needs a `template` "
                              "(see configs/model/llava_1_5_7b.yaml)")
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    images = AutoImageProcessor.from_pretrained(str(path), **dict(image_processor or {}))
    processor = ChatProcessor(tokenizer, images, model.config, ChatTemplate(**dict(template)))
    return model, processor


def save_model(model, processor, path: str | Path) -> None:
    model.save_pretrained(path)
    processor.save_pretrained(path)
