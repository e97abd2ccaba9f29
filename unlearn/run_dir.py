"""A run never starts in a directory that holds a finished run.

Why: a second run into the same `hydra.run.dir` (a re-typed command, a re-run sweep) would do all its work,
replace the first run's method artifacts and Hydra's record of its overrides, and only then be refused when it
came to publish its model, leaving a directory whose model and metrics say one run and whose mask and overrides
say another. So it is refused before anything is written: by the Hydra callback before Hydra saves the job's
config (`.hydra/`), and again by `pipeline.run` for callers that do not go through Hydra. A directory holding a
run that failed (no metrics, no model) may be run into again.
"""

from __future__ import annotations

import os
from pathlib import Path

from hydra.experimental.callback import Callback

FINISHED = ("metrics.json", "model")  # what only a finished run leaves


class FinishedRunError(FileExistsError):
    pass


class NotWritableError(OSError):
    pass


def finished_outputs(directory: Path) -> list[Path]:
    return [directory / name for name in FINISHED if (directory / name).exists()]


WEIGHTS = ("*.safetensors", "*.bin", "*.pt")  # a run writes weights only under model/: these name a checkpoint


def check_fresh_run_dir(directory, key: str = "hydra.run.dir") -> None:
    """Refuse a run dir that holds a finished run, or model weights: a checkpoint's own directory (model.path, a
    cached vanilla model), whose config.json the run's would replace (until the thirty-first session it did)."""
    done = finished_outputs(Path(directory))
    if done:
        raise FinishedRunError(f"{key}={directory} already holds a finished run ({', '.join(p.name for p in done)}); "
                               f"nothing was written: choose another {key}")
    weights = sorted(p.name for pattern in WEIGHTS for p in Path(directory).glob(pattern))
    if weights:
        raise FinishedRunError(f"{key}={directory} holds model weights ({', '.join(weights[:3])}): a checkpoint's "
                               f"directory, whose files a run would write over; nothing was written: choose another "
                               f"{key}")


def check_writable_dir(directory, key: str) -> None:
    """Make `directory` (as the run would) or refuse naming `key`: a read-only or non-directory path stopped the run
    with a bare OSError or NotADirectoryError, naming the path and not the setting (until 2026-12-05)."""
    path = Path(str(directory))
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(f"{path} is not writable")
    except OSError as e:
        raise NotWritableError(f"{key}={directory} cannot hold the run's files ({e.strerror or e}); choose another "
                               f"{key}") from e


def _resolvable(config) -> None:
    """Hydra sets the config `${hydra:...}` reads only inside the job, after these callbacks: set it first, so a
    run dir written with it (hydra.run.dir=runs/${hydra:job.name}) resolves here too."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        try:
            HydraConfig.instance().set_config(config)
        except AssertionError:  # not a whole Hydra config (a test's); nothing reads ${hydra:} there
            pass


class RefuseFinishedRuns(Callback):
    """Hydra callback (configs/config.yaml, hydra.callbacks): runs before a run's or a sweep's first job saves
    anything. A sweep is refused when its directory holds any finished run: job numbers restart at 0, so a second
    sweep into it would write over the first one's jobs."""

    # Hydra turns a callback's exception into a warning and carries on, so the refusal exits (SystemExit is not
    # an Exception): the message on stderr, status 1

    def on_run_start(self, config, **kwargs) -> None:
        _resolvable(config)
        try:
            check_fresh_run_dir(config.hydra.run.dir, "hydra.run.dir")
            check_writable_dir(config.hydra.run.dir, "hydra.run.dir")
        except (FinishedRunError, NotWritableError) as e:
            raise SystemExit(f"Error: {e}") from e

    def on_multirun_start(self, config, **kwargs) -> None:
        _resolvable(config)
        sweep = Path(config.hydra.sweep.dir)
        done = sorted({p.parent for name in FINISHED for p in sweep.rglob(name)}) if sweep.is_dir() else []
        if done:
            shown = ", ".join(str(p) for p in done[:3]) + (f" and {len(done) - 3} more" if len(done) > 3 else "")
            raise SystemExit(f"Error: hydra.sweep.dir={sweep} already holds finished runs ({shown}); nothing was "
                             "written: choose another hydra.sweep.dir")
