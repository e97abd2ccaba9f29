"""Every config group composes, and a bad choice gets an error that names the choices."""

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from unlearn.config import CONFIG_DIR as CONFIGS

GROUPS = sorted(p.name for p in CONFIGS.iterdir() if p.is_dir())


def _compose(overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=True)


def _options(group):
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in _options(g)])
def test_every_option_composes(group, option, tmp_path):
    cfg = _compose([f"{group}={option}", f"hydra.run.dir={tmp_path}", f"paths.cache_dir={tmp_path}"])
    # resolve everything except hydra's own runtime fields
    container = OmegaConf.to_container(cfg, resolve=False)
    container.pop("hydra")
    cfg = OmegaConf.create(container)
    cfg.paths.output_dir = str(tmp_path)
    OmegaConf.resolve(cfg)
    assert cfg.method.name and cfg.model.name and cfg.data.name
    if group == "trainer":
        assert cfg.trainer._target_ == "lightning.Trainer"


def test_unknown_method_lists_available():
    with pytest.raises(MissingConfigException) as err:
        _compose(["method=nope"])
    assert "Available options" in str(err.value) and "finetune" in str(err.value)
    GlobalHydra.instance().clear()


def test_groups_exist():
    for g in ("method", "model", "data", "trainer", "logger", "debug"):
        assert g in GROUPS
    assert {"cpu", "gpu", "ddp", "ddp_sim"} <= set(_options("trainer"))
    assert {"wandb", "csv", "none"} <= set(_options("logger"))


def test_debug_fast_has_no_logger_unless_the_command_line_names_one(tmp_path):
    """`debug=fast` set `logger: null` over the command line's `logger=csv` or `logger=wandb` without a word (until
    the 42nd session): a smoke test could not be looked at in a logger. Now its default only."""
    from unlearn.config import compose_config

    def logger(*overrides):
        return compose_config(list(overrides), tmp_path / "run", tmp_path / "cache").get("logger")

    assert logger("debug=fast") is None and logger("experiment=organism", "debug=fast") is None
    assert logger("debug=fast", "logger=csv")._target_ == "lightning.pytorch.loggers.CSVLogger"
    assert logger("logger=wandb", "debug=fast")._target_ == "unlearn.wandb_logger.WandbLogger"
