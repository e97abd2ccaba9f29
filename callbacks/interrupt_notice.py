"""Ctrl-C says what it stopped and where the run can be picked up.

Why: Lightning reports a KeyboardInterrupt at info level ("Detected KeyboardInterrupt, attempting graceful shutdown"),
which the framework's quiet logging drops, and then exits with status 1: an interrupted teaching or unlearning
ended without a word (a reader's walkthrough, 2026-12-06), and nothing named the checkpoint to resume from.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L

log = logging.getLogger(__name__)


class InterruptNotice(L.Callback):
    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, KeyboardInterrupt) or not trainer.is_global_zero:
            return
        what = f"{type(pl_module).__name__} at epoch {trainer.current_epoch}, step {trainer.global_step}"
        checkpoint = getattr(trainer.checkpoint_callback, "dirpath", None)
        last = Path(checkpoint) / "last.ckpt" if checkpoint else None
        if last is not None and last.is_file():
            log.warning("interrupted (Ctrl-C): %s. The last finished epoch's checkpoint is %s: resume with "
                        "method.ckpt_path=%s", what, last, last)
        else:
            log.warning("interrupted (Ctrl-C): %s; no checkpoint of this stage was written (run it again)", what)
