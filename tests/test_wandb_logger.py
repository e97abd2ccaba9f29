"""The W&B logger as `logger=wandb` builds it, offline: what a user sees and what the dashboard gets."""

import logging
import re

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from callbacks.neuron_pruning import log_figures

wandb = pytest.importorskip("wandb")


@pytest.fixture()
def offline_logger(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")  # conftest disables W&B for every other test
    monkeypatch.setenv("WANDB_SILENT", "false")
    cfg = OmegaConf.load("configs/logger/wandb.yaml")
    cfg.name, cfg.group, cfg.save_dir = "test", "test", str(tmp_path)
    logger = instantiate(cfg)
    yield logger
    wandb.finish()


def test_a_run_prints_no_warning_about_the_deprecated_anonymous_setting(offline_logger, capfd):
    offline_logger.experiment  # wandb.init
    out = capfd.readouterr()
    assert "offline" in (out.out + out.err).lower()  # W&B did speak: the check below reads its output
    assert "anonymous" not in (out.out + out.err).lower()


def test_anonymous_logging_asked_for_is_kept(tmp_path):
    from unlearn.wandb_logger import WandbLogger

    assert WandbLogger(anonymous=True, offline=True, save_dir=str(tmp_path))._wandb_init["anonymous"] == "allow"


def test_figures_of_different_sizes_go_under_their_own_keys(offline_logger, tmp_path, caplog):
    paths = []
    for name, size in (("pruned_per_layer", (40, 30)), ("activation_by_modality", (64, 20))):
        Image.new("RGB", size, "white").save(tmp_path / f"{name}.png")
        paths.append(tmp_path / f"{name}.png")
    with caplog.at_level(logging.WARNING):
        log_figures([offline_logger], paths)
    assert not [r for r in caplog.records if "sizes do not match" in r.getMessage()]
    media = tmp_path / "wandb"
    # W&B names a logged image <key>_<step>_<hash>.png
    logged = sorted(f"manu/{re.sub(r'_[0-9]+_[0-9a-f]+[.]png$', '', p.name)}"
                    for p in media.rglob("media/images/manu/*.png"))
    assert logged == ["manu/activation_by_modality", "manu/pruned_per_layer"]


def test_each_job_of_a_sweep_gets_its_own_run(tmp_path, monkeypatch):
    """The jobs of `train.py -m` run one after another in one process: until 2026-12-05 the first job's W&B run
    stayed open and every later job's logger attached to it. pipeline.run ends it (finish_wandb_run)."""
    from unlearn.pipeline import finish_wandb_run

    monkeypatch.setenv("WANDB_MODE", "offline")
    ids = []
    for job in ("ga", "npo"):
        cfg = OmegaConf.load("configs/logger/wandb.yaml")
        cfg.name, cfg.group, cfg.save_dir = job, "sweep", str(tmp_path / job)
        ids.append(instantiate(cfg).experiment.id)
        finish_wandb_run(0)
    assert ids[0] != ids[1] and wandb.run is None
    assert (tmp_path / "npo" / "wandb").is_dir()  # the second job's files under its own directory
    finish_wandb_run(0)  # nothing open: nothing to do
