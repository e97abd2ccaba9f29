"""A teaching killed as an epoch starts, for the resume scripts (teaching_resume.py, cache_teaching_resume.py).

Import after `ddp_script` (which puts the repository on sys.path)."""

from contextlib import contextmanager


@contextmanager
def killed_at_epoch(epoch: int | None):
    """FinetuneModule raises as teaching epoch `epoch` (0-based) starts, after the previous epoch's checkpoint, as a
    kill there would; the raise ends the block, and nothing else does (None: no kill)."""
    from unlearn.methods import finetune

    real = finetune.FinetuneModule.on_train_epoch_start

    def interrupt(self):
        if self.current_epoch == epoch:
            raise RuntimeError("killed")

    finetune.FinetuneModule.on_train_epoch_start = interrupt
    try:
        yield
    except RuntimeError as e:
        assert str(e) == "killed", e
    finally:
        finetune.FinetuneModule.on_train_epoch_start = real
