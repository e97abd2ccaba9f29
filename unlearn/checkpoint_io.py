"""Training checkpoints written beside their target and renamed, as every other artifact (unlearn/io.py).

Why: Lightning's TorchCheckpointIO writes through fsspec, whose local file is made in TMPDIR and moved on close; on
a cluster's node-local /tmp with the run directory on NFS or Lustre that move is a copy over the old last.ckpt,
so a kill or a full disk mid-copy left a truncated last.ckpt and no earlier one (measured by a reader on
2026-12-06: 1 MB of a 6 MB checkpoint, the resume then refused as "not a checkpoint"). It also held the whole
checkpoint in memory before writing it; here it streams into the file.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from unlearn.io import write_atomic


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose local saves go through unlearn.io.write_atomic (a unique temp file in the target's
    directory, synced, renamed); a remote path (s3://, ...) is left to Lightning's."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        write_atomic(Path(path), lambda f: torch.save(checkpoint, f))


def last_every_epoch(dirpath):
    """`(callback, plugin)` for a Trainer: last.ckpt in `dirpath` at every epoch's end, the newest replacing the one
    before, renamed into place (AtomicCheckpointIO). Until 2026-12-05 save_last with save_top_k=0, which Lightning
    2.6 writes only as fit ends: an interrupted run left nothing to resume from. The gradient methods and a
    teaching (method=finetune) checkpoint alike."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    return (ModelCheckpoint(dirpath=dirpath, filename="last", save_top_k=1, every_n_epochs=1,
                            enable_version_counter=False), AtomicCheckpointIO())


@contextmanager
def resuming_in_place(ckpt_path):
    """Around `fit(ckpt_path=...)`: resumed into the interrupted run's directory, as its refusal says, the
    checkpoint Lightning finds there, and warns about, is the one it resumes (and replaces at the next epoch's end)."""
    with warnings.catch_warnings():
        if ckpt_path:
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
        yield
