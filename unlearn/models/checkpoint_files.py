"""A checkpoint's files read before any weights load: whether a path is local, its config.json, its family, its
tokenizer and image-processor files. Apart from the loaders (unlearn/models/loading.py), which import
transformers: the checks before a run read these without it (unlearn/before_run.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from unlearn.models.chat_template import FAMILIES

CONFIG_NAME = "vl_processor.json"  # the embedded model's own processor file (unlearn/models/processor.py)


class CheckpointError(FileNotFoundError):
    pass


def written_local(path) -> bool:
    """Local by how it is written, whatever exists: absolute, `.`/`~`-led, or more slashes than `owner/name` has."""
    return (Path(str(path)).expanduser().is_absolute() or str(path).startswith((".", "~"))
            or str(path).strip("/").count("/") > 1)


def looks_local(path) -> bool:
    """Read as a local directory, not a hub id (`name` or `owner/name`): written so, or there."""
    return written_local(path) or Path(str(path)).expanduser().exists()


def resolved_path(path) -> str:
    """A local path however it is written (./runs/x, ~/runs/x, its absolute form) as one string; a hub id as it is."""
    return str(Path(str(path)).expanduser().resolve()) if looks_local(path) else str(path)


def checkpoint_config(path) -> dict | None:
    """A local checkpoint's config.json, read before any weights load (None: a hub id, no such file, or a file
    that is not a JSON object, which the load names)."""
    try:
        config = json.loads((Path(str(path)).expanduser() / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def check_local_checkpoint(path, key: str, with_processor: bool = False) -> bool:
    """Whether `path` is read as local; a local one must hold a checkpoint (a hub id is left to the load), and
    with `with_processor` a real one its tokenizer and image-processor files too (check_processor_files; a
    reference model's are never read)."""
    local = looks_local(path)
    where = Path(str(path)).expanduser()
    if local and (where / "metrics.json").is_file() and (where / "model" / "config.json").is_file():
        # a run's own config.json is no checkpoint's (until 2026-12-05 read as one: "model_type None")
        raise CheckpointError(f"{key}={path}: a run directory; the model it wrote is {where / 'model'}")
    if local and not (where / "config.json").is_file():
        raise CheckpointError(f"{key}={path}: no checkpoint there (expected a directory with config.json)")
    if local and with_processor and not (where / CONFIG_NAME).is_file():  # the embedded model saves its own
        check_processor_files(where, key)
    return local


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")  # a fast tokenizer's, SentencePiece's, BPE's
IMAGE_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")


def check_processor_files(where: Path, key: str) -> None:
    """A real checkpoint without its tokenizer or image processor files (a partial download, weights copied alone)
    is refused before its weights load: transformers' own errors came after them (about 28 GB at 7B), naming
    neither the setting nor the file (until 2026-12-06). The official scripts save the weights alone
    (MLLMU-Bench finetune.py:221, MMUnlearner MLLMU_finetune.py:236) and read the processor from --model_id:
    such a checkpoint loads with `model.processor_path` (PROCESSOR_KEY)."""
    for files, what in ((TOKENIZER_FILES, "tokenizer"), (IMAGE_PROCESSOR_FILES, "image processor")):
        if not any((where / f).is_file() for f in files):
            raise CheckpointError(f"{key}={where}: no {what} file there ({' or '.join(files)}): a partial download "
                                  "or the weights copied alone? download the checkpoint whole, or, for a checkpoint "
                                  f"saved without its processor (as the official scripts save theirs), read it from "
                                  f"the released model: {PROCESSOR_KEY}=<its local directory or hub id>")


# where a real checkpoint's tokenizer and image processor are read from, when not from the checkpoint itself
PROCESSOR_KEY = "model.processor_path"


def check_processor_source(processor_path, key: str = PROCESSOR_KEY) -> bool:
    """Whether `processor_path` is read as local; a local one must hold the tokenizer and image-processor files
    (a hub id is left to the load, whose failure names `key`)."""
    local = looks_local(processor_path)
    where = Path(str(processor_path)).expanduser()
    if local and not where.is_dir():
        raise CheckpointError(f"{key}={processor_path}: no such directory (a local copy of the released model's "
                              "processor, or a hub id such as llava-hf/llava-1.5-7b-hf; null reads the checkpoint's)")
    if local:
        check_processor_files(where, key)
    return local


# the image processors of the supported families (transformers' class names without their backend's suffix,
# Fast or Pil; the files name the plain class): one of another family than the checkpoint's is refused by
# check_processor_family. LLaVA checkpoints may carry other vision towers' processors (SigLIP), so a class not
# listed here is never refused
IMAGE_PROCESSOR_FAMILIES = {"CLIPImageProcessor": "llava", "Idefics2ImageProcessor": "idefics2",
                            "Qwen2VLImageProcessor": "qwen2_vl"}
FAMILY_GROUPS = {"qwen2_5_vl": "qwen2_vl"}  # Qwen2.5-VL reads Qwen2-VL's image processor


def processor_file_class(where: Path) -> str | None:
    """The image processor class a local folder's preprocessor_config.json (or processor_config.json, which may
    nest it) names, read without loading it (None where neither names one)."""
    for name in IMAGE_PROCESSOR_FILES:
        try:
            config = json.loads((where / name).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(config, dict) and isinstance(config.get("image_processor"), dict):
            config = config["image_processor"]
        if isinstance(config, dict) and config.get("image_processor_type"):
            return str(config["image_processor_type"])
    return None


def check_processor_files_family(where, model_type: str | None, key: str) -> None:
    """check_processor_family from the files, before anything loads (check_input_paths)."""
    name = processor_file_class(Path(str(where)).expanduser())
    if name is not None:
        check_processor_family(name, model_type, key, where)


def check_processor_family(name: str, model_type: str | None, key: str, where) -> None:
    """An image processor of another supported family than the checkpoint's (`model.processor_path` pointing at
    a Qwen2-VL folder for a LLaVA checkpoint) is refused naming `key`. Until the forty-sixth session it loaded and
    the run stopped in generate, in the before-evaluation ("model_kwargs are not used by the model:
    ['image_grid_thw']"), naming no setting."""
    family = IMAGE_PROCESSOR_FAMILIES.get(name.removesuffix("Fast").removesuffix("Pil"))
    if family is None or model_type is None:
        return
    if family != FAMILY_GROUPS.get(model_type, model_type):
        raise CheckpointError(f"{key}={where}: its image processor is {name}, a {family} "
                              f"checkpoint's, but the checkpoint is model_type {model_type!r}: read the processor "
                              f"of a {model_type} checkpoint (for a checkpoint saved without one, its released "
                              "model's)")


def check_family(config_file: Path, key: str, model_types: Sequence[str] | None = None) -> None:
    """A model type with no image adapter, or not one the model config is written for (`model.model_types`), is
    refused from its config.json, not after minutes of loading 7B weights (ChatProcessor refuses the first again
    for hub ids, `check_model_type` the second)."""
    try:
        model_type = json.loads(config_file.read_text()).get("model_type")
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{key}: {config_file} is not readable JSON: {e}") from e
    if model_type not in FAMILIES:
        raise CheckpointError(f"{key}: {config_file} says model_type {model_type!r}, which has no image adapter "
                              f"here; supported: {list(FAMILIES)}")
    check_model_type(model_type, key, config_file, model_types)


def configured_model_types(model_cfg) -> list[str] | None:
    """`model.model_types`, the checkpoint families a model config is written for (None: not declared)."""
    types = model_cfg.get("model_types")
    return None if types is None else [str(t) for t in types]


def model_configs_for(model_type: str) -> list[str]:
    """The shipped model configs (configs/model/*.yaml) whose `model_types` hold `model_type`: what a refusal
    names, where "choose the model= config of that family" left the user to find them."""
    from unlearn.config import shipped_config, shipped_names

    return [name for name in shipped_names("model")
            if model_type in (shipped_config("model", name).get("model_types") or ())]


def family_advice(model_type: str) -> str:
    configs = model_configs_for(model_type)
    if not configs:
        return "choose the model= config of that family"
    return "choose " + " or ".join(f"model={c}" for c in configs)


def check_model_type(model_type: str, key: str, where, model_types: Sequence[str] | None) -> None:
    if model_types and model_type not in model_types:
        raise CheckpointError(f"{key}: {where} says model_type {model_type!r}, but the model config is written "
                              f"for {list(model_types)} (model.model_types; its template and modules): "
                              f"{family_advice(model_type)}")
