"""Load and save a model with its processor: the same path for the embedded model and real checkpoints."""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from omegaconf import OmegaConf
from safetensors import SafetensorError
from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer, PreTrainedModel

from unlearn.models.chat_processor import ChatProcessor
from unlearn.models.chat_template import ChatTemplate
from unlearn.models.checkpoint_files import (PROCESSOR_KEY, CheckpointError, check_family, check_local_checkpoint,
                                             check_model_type, check_processor_family, check_processor_files,
                                             check_processor_source, checkpoint_config)
from unlearn.models.processor import CONFIG_NAME, VLProcessor

log = logging.getLogger(__name__)


# transformers 5 (from_pretrained's use_kernels, on by default) swaps layers for kernels it downloads from the
# hub (kernels-community/*) when the `kernels` package is installed (a dependency of transformers 5.25), at the
# first `model.train()` on a GPU: a download at run time, which fails offline (seen on an H200, 2026-12-04:
# "Version 2 of 'kernels-community/rotary' is not available in the local cache"), and kernels no official code
# ran. Every model here loads with them off.
HUB_KERNELS_SWITCH = hasattr(PreTrainedModel, "set_use_kernels")


def _not_found(key: str, path, error: Exception) -> CheckpointError:
    """transformers' hub errors name neither the setting nor that the path was read as a hub id."""
    return CheckpointError(f"{key}={path}: no such local directory, and reading it as a hub id failed (write a "
                           f"local path as ./{path} or an absolute one; for a machine without network, download "
                           f"it once, `hf download {path} --local-dir DIR`, and set {key}=DIR): {error}")


def load_model(path: str | Path, dtype: str = "float32", key: str = "model.path",
               template: Mapping | None = None, attn_implementation: str | None = None,
               image_processor: Mapping | None = None, tokenizer: Mapping | None = None,
               model_types: Sequence[str] | None = None, processor_path: str | Path | None = None,
               processor_key: str = PROCESSOR_KEY):
    """`path` is a local directory or a hub id; a missing local directory names `key`.

    A directory with `vl_processor.json` is the embedded model; anything else is a real checkpoint, read
    with its own tokenizer (loaded with `tokenizer`'s arguments, `model.tokenizer`, e.g. `{legacy: true}`) and
    image processor (settings overridden by `image_processor`, e.g. `{do_image_splitting: false}`) and prompted
    with `template` (`model.template`). `model_types`: the config.json model types the model config is written
    for (`model.model_types`); another is refused. `processor_path` (`model.processor_path`; None: `path`): where a
    real checkpoint's tokenizer and image processor are read from, as the official scripts read theirs from the
    released model's hub id (`--model_id`: MLLMU-Bench eval.py:857-858, GA.py:218; MANU prune_incremental.py;
    MMUnlearner MLLMU_eval.py), not from the checkpoint they save (its weights alone).
    """
    p = Path(str(path)).expanduser()
    local = check_local_checkpoint(path, key)
    embedded = local and (p / CONFIG_NAME).is_file()
    if embedded and processor_path is not None:  # refused, not dropped: the run would not read what it asks for
        raise CheckpointError(f"{processor_key}={processor_path}: {key}={path} is the embedded model, whose "
                              f"processor is saved with it; leave {processor_key} null")
    processor_local = check_processor_source(processor_path, processor_key) if processor_path is not None else None
    if local and not embedded:  # a real checkpoint: its family read before its weights
        check_family(p / "config.json", key, model_types)
        if processor_path is None:
            check_processor_files(p, key)
    if not hasattr(torch, str(dtype)):
        raise ValueError(f"model.dtype={dtype!r} is not a torch dtype (float32, bfloat16, float16)")
    kwargs = {"dtype": getattr(torch, dtype)}
    if HUB_KERNELS_SWITCH:
        kwargs["use_kernels"] = False  # see HUB_KERNELS_SWITCH
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    source = str(p) if local else str(path)  # transformers does not expand ~
    hub_type = None
    if not local and model_types:  # a hub id's config.json alone, before gigabytes of weights are fetched
        from transformers import AutoConfig

        try:
            hub_type = AutoConfig.from_pretrained(source).model_type
        except OSError as e:  # unreachable or unknown: the weights would fail alike, after as many retries
            raise _not_found(key, path, e) from e  # (until 2026-12-05 they were tried: 25 s more offline)
        check_model_type(hub_type, key, "its config.json", model_types)
    if not embedded:  # a real checkpoint's processor, read before its weights (below)
        tokenizer, images, reading_key, reading = _read_processor(
            path, source, local, key, processor_path, processor_local, processor_key, tokenizer, image_processor)
        if template is None:
            raise CheckpointError(f"{key}={path} is a real checkpoint: its model config needs a `template` "
                                  "(see configs/model/llava_1_5_7b.yaml)")
        # the checkpoint's type from its config.json where it was read (a local one, or a hub id's under
        # model_types); otherwise the loaded model's, below
        known_type = (checkpoint_config(p) or {}).get("model_type") if local else hub_type
        check_processor_family(type(images).__name__, known_type, reading_key, reading)  # None: checked below
    try:
        model = AutoModelForImageTextToText.from_pretrained(source, **kwargs)
    except SafetensorError as e:  # a truncated or corrupt weights file: its own message names no file or key
        raise CheckpointError(f"{key}={path}: its weights could not be read (a truncated or corrupt .safetensors "
                              f"file?): {e}") from e
    except OSError as e:
        if local:
            raise CheckpointError(f"{key}={path}: the checkpoint there could not be read: {e}") from e
        raise _not_found(key, path, e) from e
    if embedded:
        given = [k for k, v in (("template", template), ("tokenizer", tokenizer), ("image_processor", image_processor))
                 if v]
        if given:  # the embedded processor is saved whole: until 2026-12-05 these were dropped without a word
            log.warning("%s=%s is the embedded model, whose processor is saved with it: model.%s not applied",
                        key, path, ", model.".join(given))
        return model, VLProcessor.from_pretrained(p)
    check_model_type(model.config.model_type, key, "its config", model_types)  # a hub id's, read as it loaded
    if known_type is None:
        check_processor_family(type(images).__name__, model.config.model_type, reading_key, reading)
    processor = ChatProcessor(tokenizer, images, model.config, ChatTemplate(**dict(template)))
    return model, processor


def _read_processor(path, source: str, local: bool, key: str, processor_path, processor_local, processor_key: str,
                    tokenizer_settings: Mapping | None, image_processor: Mapping | None):
    """A real checkpoint's tokenizer and image processor (from `processor_path` where set), with the key and the
    place they were read from. Read before the weights: until the forty-sixth session they came after them, so an
    unreachable `model.processor_path` hub id was refused after the checkpoint's 28 GB had loaded."""
    if processor_path is None:
        reading, reading_key = source, key
    else:
        reading = str(Path(str(processor_path)).expanduser()) if processor_local else str(processor_path)
        reading_key = processor_key
    try:
        tokenizer = load_tokenizer(reading, tokenizer_settings)
        images = AutoImageProcessor.from_pretrained(reading, **dict(image_processor or {}))
    except OSError as e:  # a hub id unreachable, or a folder transformers cannot read
        if processor_path is not None and not processor_local:
            raise _not_found(reading_key, processor_path, e) from e
        if processor_path is None and not local:  # the checkpoint's hub id, read here first
            raise _not_found(key, path, e) from e
        raise CheckpointError(f"{reading_key}={processor_path if processor_path is not None else path}: its "
                              f"processor could not be read: {e}") from e
    check_image_settings(images, image_processor, "model.image_processor", loader_keys=True)  # else dropped silently
    return tokenizer, images, reading_key, reading


def load_tokenizer(source: str, settings: Mapping | None = None, key: str = "model.tokenizer"):
    """The checkpoint's tokenizer, loaded with `settings`. A setting the loaded class keeps as an attribute must
    hold its value there; one it has no attribute for is named in a warning (transformers keeps unknown
    arguments without a word, so a misspelt one would change nothing)."""
    settings = dict(settings or {})
    tokenizer = AutoTokenizer.from_pretrained(source, **settings)
    for name, value in settings.items():
        if name in LOADER_KEYS:  # how to load, not a setting of the tokenizer
            continue
        if not hasattr(tokenizer, name):
            log.warning("%s.%s: %s has no such setting; it changes nothing", key, name, type(tokenizer).__name__)
        elif getattr(tokenizer, name) != value:
            raise ValueError(f"{key}.{name}={value!r}: {type(tokenizer).__name__} reads it as "
                             f"{getattr(tokenizer, name)!r}")
    return tokenizer


def save_model(model, processor, path: str | Path) -> None:
    model.save_pretrained(path)
    processor.save_pretrained(path)


# what from_pretrained takes besides settings (model.image_processor only: a loaded processor has no loader)
LOADER_KEYS = ("use_fast", "backend", "revision", "local_files_only", "trust_remote_code", "cache_dir", "token")


def check_image_settings(images, overrides: Mapping | None, key: str, loader_keys: bool = False) -> None:
    """Refuse a setting the image processor does not have (transformers drops it without a word): one of its
    typed settings (`valid_kwargs`) or a plain value it holds, never a method or property."""
    known = set(getattr(type(images), "valid_kwargs", dict).__annotations__)
    known |= {k for k, v in vars(images).items() if not k.startswith("_") and not callable(v)}
    unknown = sorted(k for k in (overrides or {}) if k not in known and not (loader_keys and k in LOADER_KEYS))
    if unknown:
        raise ValueError(f"{key}: {type(images).__name__} has no setting {unknown}")


def training_processor(processor, overrides: Mapping | None, key: str):
    """`processor` with `overrides` over its image processor's settings: what a recipe's training or statistics
    data read (`key`: its `<section>.image_processor`), while the evaluation keeps `processor`.

    Why: MLLMU-Bench and MANU train and prune Idefics2 with do_image_splitting=False (MLLMU-Bench finetune.py:78,
    baselines/GA.py:238; MANU prune_incremental.py) but evaluate with the off-the-shelf one (eval.py:857),
    which one `model.image_processor` cannot reproduce. The new image processor is built as loading builds one
    with those settings (`from_dict` over the loaded one's settings)."""
    if not overrides:
        return processor
    overrides = OmegaConf.to_container(overrides, resolve=True) if OmegaConf.is_config(overrides) else dict(overrides)
    images = getattr(processor, "image_processor", None)
    if images is None:
        raise ValueError(f"{key}={overrides}: the embedded model's processor has no image-processor settings "
                         "(it draws its portraits at model.portrait_size); leave it {}")
    check_image_settings(images, overrides, key)
    out = copy.copy(processor)  # the tokenizer, template and config are shared
    out.image_processor = type(images).from_dict(images.to_dict(), **overrides)
    return out


def recipe_processor(ctx, section: str):
    """The processor the training or statistics data of recipe `section` (finetune, method, mmunlearner, manu)
    read: `ctx.processor` with `<section>.image_processor` over its image settings and `<section>.image_labels`
    (unlearn/data/written.py) for its written rows (none without a config)."""
    cfg = getattr(ctx, "cfg", None)
    return section_processor(ctx.processor, OmegaConf.select(cfg, section) if cfg is not None else None, section)


def section_processor(processor, recipe: Mapping | None, section: str):
    """`processor` as recipe `section`'s config `recipe` (None: no config) sets its image settings and labels."""
    recipe = recipe or {}
    proc = training_processor(processor, recipe.get("image_processor"), f"{section}.image_processor")
    return with_image_labels(proc, recipe.get("image_labels"), f"{section}.image_labels")


IMAGE_LABEL_FAMILIES = ("llava", "idefics2")


def with_image_labels(processor, value, key: str = "finetune.image_labels"):
    """`processor` whose written all-token rows label the image positions as `value` says (null: as loaded;
    unlearn/data/written.py IMAGE_LABELS). LLaVA: a processor config with patch_size; Idefics2: transformers
    4.45.1 (MLLMU-Bench's requirements.txt), whose Idefics2 loss is a plain CrossEntropyLoss(), where 4.40.2
    (its idefics_requirements.txt) ignores the image token id."""
    if value is None:
        return processor
    if processor.family not in IMAGE_LABEL_FAMILIES:
        raise ValueError(f"{key}={value}: only LLaVA's and Idefics2's image positions move between transformers "
                         f"versions or processor configs (this model is {processor.family!r}); leave it null")
    out = copy.copy(processor)
    out.image_labels = value
    return out
