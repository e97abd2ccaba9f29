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
    cfg.name, cfg.group, cfg.job_type, cfg.save_dir = "test", "test", "test", str(tmp_path)
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
        cfg.name, cfg.group, cfg.job_type, cfg.save_dir = job, "sweep", job, str(tmp_path / job)
        ids.append(instantiate(cfg).experiment.id)
        finish_wandb_run(0)
    assert ids[0] != ids[1] and wandb.run is None
    assert (tmp_path / "npo" / "wandb").is_dir()  # the second job's files under its own directory
    finish_wandb_run(0)  # nothing open: nothing to do


def test_runs_are_grouped_by_method_and_named_by_seed(tmp_path):
    """W&B draws a group as one mean line: until 2026-12-05 every method, setting, seed and teaching run of a model
    and data was one group, each run named by its method alone."""
    from unlearn.config import compose_config

    def logger(*overrides):
        return compose_config(["logger=wandb", *overrides], tmp_path / "run", tmp_path / "cache").logger

    ga = logger("method=ga", "seed=1")
    assert (ga.name, ga.group, ga.job_type) == ("ga-seed1", "mllmu_mini-forget_10-tiny_llava-ga", "ga")
    assert logger("method=manu").group != ga.group and logger("method=finetune").group != ga.group
    assert logger("method=ga", "data.forget_split=forget_5").group != ga.group


def test_wandb_mode_set_by_the_user_wins_over_offline(tmp_path, monkeypatch):
    """Lightning sets WANDB_MODE=dryrun for the process under offline=True: `WANDB_MODE=disabled python train.py`
    still wrote an offline run (until 2026-12-05)."""
    import os

    wandb.teardown()  # as a fresh process: W&B reads its settings once a process, and earlier tests ran offline
    monkeypatch.setenv("WANDB_MODE", "disabled")
    cfg = OmegaConf.load("configs/logger/wandb.yaml")
    cfg.name, cfg.group, cfg.job_type, cfg.save_dir = "test", "test", "test", str(tmp_path)
    instantiate(cfg).experiment.log({"x": 1.0})
    wandb.finish()
    assert os.environ["WANDB_MODE"] == "disabled" and not list(tmp_path.rglob("offline-run-*"))


class Recorder:
    """A logger that keeps what the run gives it (the calls a dashboard receives, in order)."""

    calls: list = []

    def __init__(self, **kwargs):
        Recorder.calls = []

    def log_hyperparams(self, params):
        Recorder.calls.append(("config", params))

    def log_metrics(self, metrics, step=None):
        Recorder.calls.append(("metrics", dict(metrics)))

    def finalize(self, status):
        Recorder.calls.append(("end", status))


def test_the_dashboard_has_the_setting_and_the_before_numbers_from_the_start(tmp_path, monkeypatch):
    """The config and every metric reached the logger only once a run had finished: a failed run's dashboard had
    neither (until 2026-12-05). Now the config at the start, the before-evaluation when it is known, and at the end
    the other metrics once each and what made the run (its source model, teaching, float environment, code)."""
    from unlearn import pipeline
    from unlearn.config import compose_config
    from unlearn.methods import finetune

    def run(name, teach):
        monkeypatch.setattr(finetune, "teach", teach)
        cfg = compose_config(["logger=none", "debug=fast", "method=finetune", "eval.tasks=[mc]", "eval.max_people=2",
                              "eval.cache_before=false"], tmp_path / name, tmp_path / "cache")
        cfg.logger = {"_target_": f"{__name__}.Recorder"}
        return pipeline.run(cfg)

    def fails(ctx, fcfg, **where):
        raise RuntimeError("diverged")

    with pytest.raises(RuntimeError, match="diverged"):
        run("failed", fails)
    (kind, config), (then, before), end = Recorder.calls
    assert end == ("end", "failed")  # the logger is told, and saves what it holds (the CSV logger's rows)
    assert kind == "config" and config["method"]["name"] == "finetune" and config["seed"] == 0
    assert then == "metrics" and before and all(k.startswith("before/") for k in before)
    run("finished", lambda ctx, fcfg, **where: None)
    early = Recorder.calls[1][1]
    record = next(params["run"] for kind, params in Recorder.calls if kind == "config" and "run" in params)
    assert set(record) == {"source_model", "source_teaching", "environment", "code"}
    late = [m for kind, m in Recorder.calls[2:] if kind == "metrics"]
    assert late and not set(early) & set().union(*late)  # each metric once
    assert "after/forget/text/mc_acc" in set().union(*late) and Recorder.calls[-1] == ("end", "success")
