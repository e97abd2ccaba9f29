"""The project's Hydra configs composed outside `train.py` (tests, benchmarks, scripts)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


@functools.lru_cache(maxsize=None)
def shipped_config(group: str, name: str) -> dict:
    """configs/<group>/<name>.yaml as written (its own keys: no defaults list applied, nothing resolved), {} where
    there is none. Why: checks and refusals read what a shipped config sets (a data config's `spec`, debug=fast's,
    a model config's `model_types`) without composing it. Shared between callers: read it, do not change it."""
    import yaml

    f = CONFIG_DIR / group / f"{name}.yaml"
    return (yaml.safe_load(f.read_text()) or {}) if f.is_file() else {}


def shipped_names(group: str) -> list[str]:
    """The shipped configs of `group` (configs/<group>/*.yaml), by name."""
    return sorted(f.stem for f in (CONFIG_DIR / group).glob("*.yaml"))


def compose_config(overrides: Sequence[str], output_dir: str | Path, cache_dir: str | Path) -> DictConfig:
    """`config.yaml` with overrides; the paths Hydra's runtime would fill are given, bars and summaries off, and a
    W&B logger named by the overrides, as train.py's run names it from Hydra's (unlearn/run_names.py)."""
    from unlearn.run_names import name_logger

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
    GlobalHydra.instance().clear()
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.cache_dir = str(cache_dir)
        cfg.trainer.enable_progress_bar = False
        cfg.trainer.enable_model_summary = False
    name_logger(cfg, overrides)
    return cfg
