"""The settings a run refuses are checked before train.py imports the run (unlearn/before_run.py): without Lightning
or transformers, whose imports (6-9 s here) came first until 2026-12-07, nor the data loaders' `datasets` (0.5 s; until
2026-12-07 the sequence and protocol checks imported it with the MLLMU-Bench loader)."""

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
