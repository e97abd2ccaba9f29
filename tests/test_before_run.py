"""The settings a run refuses are checked before train.py imports the run (unlearn/before_run.py): without Lightning
or transformers, whose imports (6-9 s here) came first until 2026-12-07, nor the data loaders' `datasets` (0.5 s; until
2026-12-07 the sequence and protocol checks imported it with the MLLMU-Bench loader), and torch only for the last
check, building the optimisers and schedulers (until 2026-12-07 the first check imported it: 3-5 s)."""

import subprocess
import sys
from pathlib import Path

import pytest

from unlearn.config import compose_config

ROOT = Path(__file__).resolve().parents[1]

# every shipped method, experiment and model config checked in one fresh process, which then names what it imported
EVERY_SHIPPED_CONFIG = """
import sys
from pathlib import Path
from unlearn.config import compose_config
from unlearn.before_run import check_settings_before_run
for group in ("method", "experiment", "model"):
    for name in sorted(p.stem for p in Path("configs", group).glob("*.yaml")):
        check_settings_before_run(compose_config([f"{group}={name}"], sys.argv[1], sys.argv[2]), launcher=False)
print(sorted(m for m in ("torch", "lightning", "transformers", "torchmetrics", "datasets") if m in sys.modules))
"""


def test_every_shipped_config_is_checked_without_lightning_transformers_or_datasets(tmp_path):
    checked = subprocess.run([sys.executable, "-c", EVERY_SHIPPED_CONFIG, str(tmp_path / "run"),
                              str(tmp_path / "cache")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stderr[-2000:]
    assert checked.stdout.split("\n")[-2] == "['torch']"  # torch: the optimiser and scheduler are built to check them


BAD_VALUES = """
import sys
from unlearn.config import compose_config
from unlearn.before_run import check_settings_before_run
from unlearn.settings import SettingsError
# the last refused after check_run_settings, by refuse_fsdp
for overrides in (["model.manu_alpha=150"], ["method=ga", "method.epochs=0"],
                  ["method=mmunlearner", "mmunlearner.clip=-1"], ["method=npo", "eval.dtype=float8"],
                  ["trainer.devices=abc"], ["method=manu", "trainer=fsdp_sim"]):
    try:
        check_settings_before_run(compose_config(overrides, sys.argv[1], sys.argv[2]), launcher=False)
    except SettingsError as e:
        print(str(e).split(":")[0])
    else:
        print("not refused", overrides)
print(sorted(m for m in ("torch", "lightning", "transformers", "datasets") if m in sys.modules))
"""


def test_a_bad_value_is_refused_before_torch_is_imported(tmp_path):
    """Each check but the optimiser and scheduler builds reads the config alone, and the builds come last
    (settings.builds_last): a bad value elsewhere is refused in well under a second, not after torch's import."""
    checked = subprocess.run([sys.executable, "-c", BAD_VALUES, str(tmp_path / "run"), str(tmp_path / "cache")],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stderr[-2000:]
    assert checked.stdout.split("\n")[:-1] == ["manu.alpha=150", "method.epochs=0", "mmunlearner.clip=-1",
                                               "eval.dtype='float8'", "trainer.devices='abc'",
                                               "method=manu does not run under trainer=fsdp (it needs unsharded "
                                               "weights); its statistics pass is forward-only, so use trainer=ddp (a "
                                               "7-8B model fits one GPU) (on CPU processes, as trainer=fsdp_sim", "[]"]


def test_the_optimisers_are_built_after_every_other_check(tmp_path, monkeypatch):
    """Inside check_settings_before_run and check_run_settings an optimiser or scheduler is built once every other
    check passed; called alone, check_optimizer builds at once."""
    from unlearn import settings
    from unlearn.before_run import check_settings_before_run

    built = []
    real = settings._build_optimizer
    monkeypatch.setattr(settings, "_build_optimizer", lambda node, key: (built.append(key), real(node, key)))
    monkeypatch.setattr(settings, "_build_scheduler", lambda node, optimizer, key, **kw: built.append(key))
    bad_decay = compose_config(["method=ga", "method.optimizer.weight_decay=-1", "method.epochs=0"],
                               tmp_path / "run", tmp_path / "cache")
    with pytest.raises(settings.SettingsError, match="method.epochs=0"):  # not the optimiser's weight decay
        check_settings_before_run(bad_decay, launcher=False)
    assert built == []
    bad_decay.method.epochs = 1
    for check in (check_settings_before_run, settings.check_run_settings):
        with pytest.raises(ValueError, match="method.optimizer: ValueError: Invalid weight_decay value: -1"):
            check(bad_decay)
        assert built == ["finetune.optimizer", "finetune.scheduler", "method.optimizer"]
        built.clear()
    late = compose_config(["method=mmunlearner", "mmunlearner.forget_optimizer.weight_decay=-1",
                           "mmunlearner.clip_retain=abc"], tmp_path / "run", tmp_path / "cache")
    with pytest.raises(ValueError, match="mmunlearner.clip_retain"):  # checked after the optimiser is asked for
        settings.check_run_settings(late)
    assert built == []
    with settings.builds_last():  # nested: the outermost builds
        settings.check_run_settings(compose_config([], tmp_path / "run", tmp_path / "cache"))
        assert built == []
    assert built and all(key.startswith("finetune.") for key in built)
    built.clear()
    with pytest.raises(ValueError, match="Invalid weight_decay"):  # alone: at once
        settings.check_optimizer(bad_decay.method.optimizer, "method.optimizer")
    assert built == ["method.optimizer"]


def test_a_run_checked_by_train_py_checks_only_its_launcher_again(tmp_path, monkeypatch):
    """train.py checks the settings before it imports the pipeline, all but the launcher (Lightning's cluster
    environments); pipeline.run then checks the launcher alone, so each warning is said once. Its other callers
    get every check."""
    from unlearn import pipeline

    calls = []

    class Stop(Exception):
        pass

    monkeypatch.setattr(pipeline, "check_settings_before_run", lambda cfg: calls.append("settings"))
    monkeypatch.setattr(pipeline, "check_launch_before_run", lambda cfg: calls.append("launcher"))
    monkeypatch.setattr(pipeline, "check_input_paths", lambda cfg: (_ for _ in ()).throw(Stop()))
    cfg = compose_config([], tmp_path / "run", tmp_path / "cache")
    for checked, expected in ((True, ["launcher"]), (False, ["settings"])):
        calls.clear()
        with pytest.raises(Stop):
            pipeline.run(cfg, settings_checked=checked)
        assert calls == expected


def test_the_launcher_is_refused_as_a_setting(tmp_path, monkeypatch):
    from unlearn.before_run import check_launch_before_run, check_settings_before_run
    from unlearn.settings import SettingsError

    monkeypatch.setattr("unlearn.agreed.outside_launcher", lambda: ("torchrun", 2))
    cfg = compose_config([], tmp_path / "run", tmp_path / "cache")
    check_settings_before_run(cfg, launcher=False)  # train.py's, before its imports
    for check in (check_launch_before_run, check_settings_before_run):
        with pytest.raises(SettingsError, match="torchrun started 2 processes, and trainer.devices x "
                                                "trainer.num_nodes = 1"):
            check(cfg)
