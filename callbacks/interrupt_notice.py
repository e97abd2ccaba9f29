"""Ctrl-C or SIGTERM says what it stopped and where the run can be picked up, and the process ends with a failure.

Why: Lightning reports a KeyboardInterrupt at info level ("Detected KeyboardInterrupt, attempting graceful shutdown"),
which the framework's quiet logging drops, and then exits with status 1: an interrupted teaching or unlearning
ended without a word (a reader's walkthrough, 2026-12-06), and nothing named the checkpoint to resume from.
SIGTERM (`timeout`, a batch scheduler's time limit or preemption, `docker stop`, `kill`) reaching a Trainer is caught
by Lightning's signal handler, which raises its SIGTERMException, a SystemExit without a code: until the
forty-eighth session the run ended with status 0 and no word (its directory holding no metrics.json), so
`python train.py ... && python -m unlearn.report ...` went on and a scheduler counted the job as done. It now ends
with status 128 + 15, as a process the signal killed does.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)

SIGTERM_STATUS = 128 + int(signal.SIGTERM)  # the status a shell reports for a process SIGTERM ended


class InterruptNotice(L.Callback):
    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):
            if exception.code in (None, 0):  # on every rank: each process's status says the run did not finish
                exception.code = SIGTERM_STATUS
            how = "SIGTERM"
        elif isinstance(exception, KeyboardInterrupt):
            how = "Ctrl-C"
        else:
            return
        if not trainer.is_global_zero:
            return
        # counted from 1, as the probe's lines ("epoch 9: probe MC accuracy", after the ninth) and the resume's
        # ("resuming teaching after epoch 9") count: "at epoch 9" named Lightning's 0-based index of the tenth, right
        # under the ninth's probe line (until 2026-12-07)
        epochs = getattr(trainer, "max_epochs", None)
        of = f" of {epochs}" if epochs and epochs > 0 else ""
        what = f"{type(pl_module).__name__} in epoch {trainer.current_epoch + 1}{of}, step {trainer.global_step}"
        checkpoint = getattr(trainer.checkpoint_callback, "dirpath", None)
        last = Path(checkpoint) / "last.ckpt" if checkpoint else None
        if last is not None and last.is_file():
            # the module's own key: a teaching resumes with +finetune.ckpt_path (unlearn/teaching_resume.py)
            key = getattr(pl_module, "resume_key", "method.ckpt_path")
            log.warning("interrupted (%s): %s. The last finished epoch's checkpoint is %s: resume with "
                        "%s=%s (the same command with it added)", how, what, last, key, last)
        else:
            log.warning("interrupted (%s): %s; no checkpoint of this stage was written (run it again)", how, what)
