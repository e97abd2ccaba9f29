"""The settings a run refuses before anything runs, importable without Lightning or transformers: train.py checks
them before it imports the run (6-9 s of imports here), and pipeline.run checks them for its other callers."""

from __future__ import annotations

import contextlib

from omegaconf import DictConfig

from unlearn.fsdp_refusals import refuse_fsdp
from unlearn.settings import (SettingsError, builds_last, check_accelerator, check_known_keys, check_required_keys,
                              check_run_settings, interpolation_source)


def check_settings_before_run(cfg: DictConfig, here: bool = True, launcher: bool | None = None) -> None:
    """The settings a run refuses before any data is read or any model taught, loaded or evaluated (a SettingsError
    with the check's own message); a `-m` sweep checks every job's before its first job runs (unlearn/run_dir.py),
    without what depends on where the job runs (`here=False`: a GPU, a launcher; a sweep's launcher may run its jobs
    on other machines). `launcher` (default: `here`): whether the launcher is checked too (check_launch_before_run),
    which reads Lightning's cluster environments: train.py checks the rest before it imports Lightning."""
    with refused_as_settings(cfg), builds_last():  # the optimisers and schedulers built last: they import torch
        check_required_keys(cfg)  # first: the checks below read them
        check_known_keys(cfg)  # and a misspelt key refused before torch's import (1-2 s), which the rest needs
        from unlearn.data.writings import check_sequence_settings

        check_sequence_settings(cfg)
        check_run_settings(cfg, keys_checked=True)
        if here:
            check_accelerator(cfg.get("trainer") or {})
        refuse_fsdp(cfg, cfg.method.name)  # before the before-evaluation (until 2026-12-05 after it)
        check_not_a_multirun_of_processes(cfg)
    if here if launcher is None else launcher:
        check_launch_before_run(cfg)


def check_launch_before_run(cfg: DictConfig) -> None:
    """check_launched_as_configured, refused as the settings are."""
    with refused_as_settings(cfg):
        check_launched_as_configured(cfg)


@contextlib.contextmanager
def refused_as_settings(cfg: DictConfig):
    """A check's ValueError as a SettingsError: its message (naming the key the user sets), its type saying that
    nothing has run yet."""
    try:
        yield
    except SettingsError:
        raise
    except ValueError as e:
        raise SettingsError(interpolation_source(cfg, str(e))) from e


def check_launched_as_configured(cfg: DictConfig) -> None:
    """Under torchrun (any number of processes), or srun with a multi-process trainer, the trainer runs on as many
    processes as the launcher started. Until 2026-12-05 `torchrun --nproc-per-node 2 train.py` with a one-device
    trainer (trainer=cpu, gpu) ran the whole run in each process, alone, both into one run directory. SLURM's variables are also those of
    a job's batch script, where one `python train.py` on one device is one process (Lightning checks the task
    count only for its multi-process strategies): a one-device trainer there is left alone."""
    from unlearn.agreed import outside_launcher
    from unlearn.trainer_keys import teaching_processes

    launcher = outside_launcher()
    if launcher is None:
        return
    (name, started), configured = launcher, teaching_processes(cfg)
    if name != "torchrun" and configured == 1:
        return
    if configured != started:  # torchrun's one process with a two-device trainer too
        raise ValueError(f"{name} started {started} processes, and trainer.devices x trainer.num_nodes = "
                         f"{configured}: give a multi-process trainer (trainer=ddp or fsdp) with as many "
                         f"devices per node as processes per node, and +trainer.num_nodes=<nodes>")


def check_not_a_multirun_of_processes(cfg: DictConfig) -> None:
    """`python train.py -m ...` with a multi-process trainer is refused before anything runs: Lightning starts the
    other ranks by running the command again, `-m` and its sweep included, so each rank ran the whole sweep
    itself (until 2026-12-05: with the jobs' trainers differing the run was killed, with the default sweep
    directory a rank wrote a second, single-process copy of a job's run)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from unlearn.trainer_keys import teaching_processes

    processes = teaching_processes(cfg)
    if processes > 1 and HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        raise ValueError(f"trainer.devices x trainer.num_nodes = {processes} processes in a "
                         "`python train.py -m` sweep: Lightning would start each job's other ranks by running the "
                         "whole sweep again; run the multi-process jobs one by one (a shell loop over "
                         "`python train.py ...`)")
