"""Resuming an interrupted teaching (`method=finetune +finetune.ckpt_path=<run dir>/checkpoints/last.ckpt`), as the
gradient methods resume with method.ckpt_path (unlearn/methods/gradient.py).

Why: on a real model the teaching takes hours of GPU time, and until the fifty-third session it wrote no checkpoint,
so a kill (preemption, Ctrl-C, a scheduler's SIGTERM) taught again from scratch. A resumed teaching must give the
weights an uninterrupted one gives, because the model is published under the cache key of the uninterrupted
teaching: so the checkpoint carries every draw's state (callbacks/resumable_draws.py) and the probe's
(callbacks/memorisation.py), and a checkpoint of any other teaching is refused before the before-evaluation.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

KEY = "finetune.ckpt_path"  # how the setting is spelt in messages
GIVEN_AS = "+" + KEY  # how a command gives it: absent from the recipe (configs/finetune/default.yaml)
IDENTITY_KEY = "unlearn_teaching_identity"  # where a teaching checkpoint records what it taught
# where an unlearning run that teaches its missing vanilla model into the cache checkpoints that teaching: in its own
# run directory (its only writer), beside and apart from the method's own <run dir>/checkpoints/last.ckpt
CACHE_TEACHING = ("checkpoints", "teaching")
WHERE = ("<run dir>/checkpoints/last.ckpt (method=finetune), or <run dir>/checkpoints/teaching/last.ckpt (an "
         "unlearning run's teaching of its vanilla model)")


def cache_teaching_dir(run_dir) -> Path:
    """The folder of the cache's teaching's epoch checkpoints inside an unlearning run's directory."""
    return Path(str(run_dir)).joinpath(*CACHE_TEACHING)


def teaching_identity(cfg) -> dict:
    """The settings a teaching's checkpoints are resumed under: every part of the vanilla cache key (the finetune
    recipe, epochs included, as the lr schedule spans them; teach_seed; the data; the model built; the trainer and
    thread count), the model it starts from where it is loaded (model.path), the data files read (data.path) and
    the number of processes."""
    from unlearn.models.checkpoint_files import resolved_path
    from unlearn.pipeline import teaching_processes, vanilla_parts

    parts = vanilla_parts(cfg)
    parts["teach_seed"] = parts.pop("seed")  # keyed as "seed" (vanilla_key), set as teach_seed
    data_path = cfg.data.get("path")
    return {**parts, "source_model": resolved_path(cfg.model.path) if cfg.model.get("path") else None,
            "data_path": resolved_path(data_path) if data_path else None, "processes": teaching_processes(cfg)}


# identity keys that the cache key leaves out at one value: the torch thread count enters only where it is not 1
# (pipeline.vanilla_parts), so a 2-thread checkpoint resumed on one thread read "threads: saved 2, now 'absent'",
# naming neither the setting nor the count (until 2026-12-07)
ABSENT_MEANS = {"threads": "1 (or off CPU)"}
SHOWN_AS = {"threads": "torch threads (OMP_NUM_THREADS)"}


def _value(key: str, flat: dict) -> str:
    return repr(flat[key]) if key in flat else ABSENT_MEANS.get(key, repr("absent"))


def check_teaching_resume(saved: dict | None, now: dict, completed: int | None, epochs: int) -> None:
    """Refuse a checkpoint that is not a teaching's, one of another teaching (naming the differing keys: every key
    either side records is compared, one side lacking it included), or one that has run more epochs than
    finetune.epochs."""
    from unlearn.methods.gradient import _flat

    if saved is None:
        raise ValueError(f"{KEY}: the checkpoint is not a teaching's (an unlearning run's resumes with "
                         f"method.ckpt_path); resume from the interrupted teaching's {WHERE}")
    flat_saved, flat_now = _flat(saved), _flat(now)
    keys = sorted(k for k in flat_saved.keys() | flat_now.keys()
                  if k not in flat_saved or k not in flat_now or flat_saved[k] != flat_now[k])
    if keys:
        shown = "; ".join(f"{SHOWN_AS.get(k, k)}: saved {_value(k, flat_saved)}, now {_value(k, flat_now)}"
                          for k in keys[:5])
        raise ValueError(f"{KEY}: the checkpoint was saved under other settings ({shown}{' ...' if len(keys) > 5 else ''})"
                         f"; a resumed teaching must be the teaching the cache key names: resume with the settings "
                         f"it was made with, or start afresh without {KEY}")
    if completed is not None and completed > epochs:
        raise ValueError(f"{KEY}: the checkpoint has run {completed} epochs, more than this run's "
                         f"finetune.epochs={epochs}")


def check_teaching_resume_file(path, cfg) -> None:
    """`finetune.ckpt_path` read and compared before the before-evaluation, as method.ckpt_path is
    (gradient.check_resume_file): a truncated file, a model's weights or a checkpoint of another teaching is
    refused at once and by name."""
    from unlearn.methods.gradient import epochs_run, read_training_checkpoint

    checkpoint = read_training_checkpoint(path, KEY, "the interrupted teaching's", last=WHERE)
    check_teaching_resume(checkpoint.get(IDENTITY_KEY), teaching_identity(cfg), epochs_run(checkpoint),
                          cfg.finetune.epochs)


def say_where_it_resumes(completed: int | None, epochs: int, probe_stopped: bool) -> None:
    """The log line of a resumed teaching: where it starts, or that nothing is left to teach."""
    if completed is None:
        return
    if probe_stopped:  # the probe stopped it; killed in its evaluation or its writing
        log.info("%s: the checkpoint's teaching was stopped by the probe after epoch %d; its weights are restored, "
                 "nothing is taught", KEY, completed)
    elif completed >= epochs:
        log.info("%s: the checkpoint has run all %d epochs; its weights are restored, nothing is taught", KEY,
                 completed)
    else:
        log.info("%s: resuming teaching after epoch %d of %d", KEY, completed, epochs)


def remove_cache_teaching(folder: Path, resumed_from=None) -> None:
    """Delete an unlearning run's own teaching checkpoints once the model they teach is published (rank 0): at 7B
    they are several times the model's size, and the cache holds the product. A checkpoint it resumed from outside
    `folder` (another run directory's) is that run's, and left."""
    import shutil

    if folder.is_dir():
        shutil.rmtree(folder)
        log.info("vanilla model published: this run's teaching checkpoints (%s) deleted", folder)
        try:  # the checkpoints/ folder it made, where nothing else is in it (a gradient method makes it again)
            folder.parent.rmdir()
        except OSError:
            pass
    if resumed_from and folder.resolve() not in Path(str(resumed_from)).expanduser().resolve().parents:
        log.info("%s=%s, another run's teaching checkpoint, is left as it is: delete it if nothing else resumes "
                 "from it", KEY, resumed_from)
