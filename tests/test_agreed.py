"""Rank 0 decides what the other ranks do with the cache (unlearn/agreed.py); the keys name what each rank
is taught on; a multi-process trainer is refused where Lightning would re-run a whole sweep in each rank."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from unlearn.agreed import _env_key, agreed
from unlearn.config import compose_config


def test_a_rank_rank_0_started_follows_its_decision_and_rank_0_always_decides(monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv(_env_key("cached x"), raising=False)
    assert agreed("cached x", lambda: False) is False  # rank 0 (or one process) decides and records
    assert agreed("cached x", lambda: True) is True  # and decides again: a sweep's next job is its own
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert agreed("cached x", lambda: False) is True  # a started rank: rank 0's last decision, not its own
    assert agreed("cached y", lambda: False) is False  # no decision of rank 0 under that name: its own
    assert _env_key("cached y") not in os.environ  # a started rank records nothing


def test_the_vanilla_key_names_the_threads_lightning_gives_each_rank(tmp_path, monkeypatch):
    """On CPU with OMP_NUM_THREADS unset, Lightning gives each of W ranks cores // W threads as it starts them:
    the key names that, not the count the process started with (until 2026-12-05 a model taught on 1 thread
    per rank had the key of one taught with OMP_NUM_THREADS=2)."""
    from lightning.fabric.utilities.distributed import _suggested_max_num_threads

    from unlearn.pipeline import keyed_threads, vanilla_path
    from unlearn.runtime import torch_threads

    cfg = compose_config(["debug=fast", "method=ga", "trainer=ddp_sim"], tmp_path / "run", tmp_path / "cache")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with torch_threads(3):
        assert keyed_threads(cfg) == _suggested_max_num_threads(2)
        unset = vanilla_path(cfg)
    with torch_threads(_suggested_max_num_threads(2)):
        assert vanilla_path(cfg) == unset  # whatever this process started with
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # set: Lightning leaves the ranks on it
    with torch_threads(3):
        assert keyed_threads(cfg) == 3
    one = compose_config(["debug=fast", "method=ga"], tmp_path / "run", tmp_path / "cache")
    with torch_threads(3):
        assert keyed_threads(one) == 3  # one process: its own count, as ever


def test_a_sweep_of_multi_process_runs_is_refused_before_anything_runs(tmp_path):
    root = Path(__file__).parent.parent
    proc = subprocess.run([sys.executable, "train.py", "-m", "method=ga", "debug=fast", "trainer=ddp_sim",
                           f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=root, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "UNLEARN_CACHE": str(tmp_path / "cache"),
                                            "WANDB_MODE": "disabled"})
    assert proc.returncode != 0
    assert "2 processes in a `python train.py -m` sweep" in proc.stderr
    assert not (tmp_path / "cache" / "vanilla").exists()  # nothing taught


def test_the_frontier_refuses_a_multi_process_trainer(tmp_path):
    from unlearn.frontier import check_one_process

    check_one_process(["debug=fast"], tmp_path / "cache", tmp_path)
    with pytest.raises(ValueError, match=r"--base trainer=ddp_sim: trainer.devices x trainer.num_nodes = 2"):
        check_one_process(["trainer=ddp_sim"], tmp_path / "cache", tmp_path)


@pytest.mark.parametrize("variable", ["LOCAL_RANK", "RANK", "NODE_RANK"])
def test_a_started_rank_is_not_rank_0_before_its_process_group_exists(monkeypatch, variable):
    from types import SimpleNamespace

    from unlearn.pipeline import RunContext
    from unlearn.run_dir import RANK_VARIABLES

    for v in RANK_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    ctx = SimpleNamespace()
    assert RunContext.is_global_zero.fget(ctx)
    monkeypatch.setenv(variable, "0")
    assert RunContext.is_global_zero.fget(ctx)
    monkeypatch.setenv(variable, "1")
    assert not RunContext.is_global_zero.fget(ctx)


LAUNCHER_PREFIXES = ("TORCHELASTIC_", "SLURM_", "LSB_", "JSM_")


@pytest.mark.parametrize("env, outside", [
    ({}, False),  # one process
    ({"LOCAL_RANK": "1", "NODE_RANK": "0", "WORLD_SIZE": "2"}, False),  # a rank Lightning's own launcher started
    ({"TORCHELASTIC_RUN_ID": "x", "RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"}, True),  # torchrun
    ({"TORCHELASTIC_RUN_ID": "x", "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}, False),  # torchrun, 1 process
    ({"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_PROCID": "1"}, True),  # srun, two tasks
    ({"SLURM_NTASKS": "1", "SLURM_PROCID": "0"}, False),  # srun (or sbatch) with one task
    ({"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_JOB_NAME": "interactive"}, False),  # Lightning's rule
])
def test_an_outside_launcher_is_what_lightning_detects_with_more_than_one_process(monkeypatch, env, outside):
    from unlearn.agreed import join_outside_launch, outside_launch

    for v in list(os.environ):
        if v.startswith(LAUNCHER_PREFIXES) or v in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE"):
            monkeypatch.delenv(v)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert outside_launch() is outside
    if not outside:  # nothing is made, not even the Trainer
        assert join_outside_launch(lambda: pytest.fail("a Trainer made")) is False


TORCHRUN_RANK_0 = {"TORCHELASTIC_RUN_ID": "x", "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "GROUP_RANK": "0",
                   "LOCAL_WORLD_SIZE": "2"}
# srun's first task, or the batch script of a job of two tasks (SLURM sets the same variables there)
SLURM_TASK_0 = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "unlearn", "SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2",
                "SLURM_NNODES": "1", "SLURM_NODEID": "0", "SLURM_PROCID": "0", "SLURM_LOCALID": "0"}


@pytest.mark.parametrize("launcher, trainer, extra, refused", [
    (TORCHRUN_RANK_0, "cpu", [], "torchrun started 2 processes, and trainer.devices x trainer.num_nodes = 1"),
    (TORCHRUN_RANK_0, "ddp_sim", [], None),
    (TORCHRUN_RANK_0, "ddp_sim", ["+trainer.num_nodes=2"],
     "torchrun started 2 processes, and trainer.devices x trainer.num_nodes = 4"),
    ({**TORCHRUN_RANK_0, "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1"}, "ddp_sim", [],
     "torchrun started 1 processes, and trainer.devices x trainer.num_nodes = 2"),
    (SLURM_TASK_0, "cpu", [], None),  # one process in a job's batch script: as Lightning, left alone
    (SLURM_TASK_0, "ddp_sim", ["+trainer.num_nodes=2"],
     "srun started 2 processes, and trainer.devices x trainer.num_nodes = 4"),
])
def test_a_launch_unlike_the_trainer_is_refused_before_anything_runs(monkeypatch, tmp_path, launcher, trainer, extra,
                                                                     refused):
    """torchrun's 2 processes with a one-device trainer each ran the whole run alone, into one directory."""
    from unlearn.config import compose_config
    from unlearn.pipeline import run
    from unlearn.settings import SettingsError

    for v in list(os.environ):
        if v.startswith(LAUNCHER_PREFIXES) or v in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE"):
            monkeypatch.delenv(v)
    for k, v in launcher.items():
        monkeypatch.setenv(k, v)
    cfg = compose_config(["debug=fast", "method=ga", f"trainer={trainer}", *extra], tmp_path / "run", tmp_path / "cache")
    if refused:
        with pytest.raises(SettingsError, match=re.escape(refused)):
            run(cfg)
        assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()
    else:  # passes the check: stop it at the next step, where it would make the process group
        class Joined(Exception):
            pass

        def join(cfg):
            raise Joined

        monkeypatch.setattr("unlearn.pipeline.join_process_group", join)
        with pytest.raises(Joined):
            run(cfg)


def _torchrun(script: Path, *args: str, env: dict | None = None, timeout: int = 300):
    return subprocess.run([str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc-per-node", "2",
                           str(script), *args], cwd=Path(__file__).parent.parent, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "WANDB_MODE": "disabled", **(env or {})})


def test_ranks_torchrun_starts_at_once_take_rank_0s_decisions(tmp_path):
    """Before the thirty-eighth session each rank torchrun started decided for itself until its first Trainer made
    the process group (`alone` below still does: there is no group yet); `join_process_group` makes it at the
    start, as the config's Trainers would (its strategy's timeout), and Lightning's Trainer fits on it."""
    import torch

    out = tmp_path / "records.pt"
    proc = _torchrun(Path(__file__).parent / "scripts" / "outside_launch.py", "--cache", str(tmp_path / "cache"),
                     "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-4000:]
    records = torch.load(out, weights_only=False)
    assert [r["rank"] for r in records] == [0, 1]
    assert [r["alone"] for r in records] == [True, False]  # each rank its own answer: what hung runs
    assert "rank is zero, before the group: decided by this rank alone" in proc.stderr
    assert [r["agreed"] for r in records] == [True, True]  # rank 0's
    assert [r["joined"] for r in records] == [True, True]
    assert {(r["backend"], r["timeout_s"], r["same_group"]) for r in records} == {("gloo", 123.0, True)}
    assert [(r["trainer_rank"], r["trainer_world"], r["steps"]) for r in records] == [(0, 2, 1), (1, 2, 1)]


@pytest.mark.slow
def test_srun_tasks_take_rank_0s_decisions(tmp_path):
    """The same under SLURM: two tasks started as `srun --ntasks-per-node 2` starts them (its variables set by hand
    here; Lightning's SLURMEnvironment reads them, MASTER_ADDR/PORT as a batch script exports them)."""
    import socket

    import torch

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "records.pt"
    base = {k: v for k, v in os.environ.items() if not k.startswith(LAUNCHER_PREFIXES)
            and k not in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    procs = [subprocess.Popen([sys.executable, str(Path(__file__).parent / "scripts" / "outside_launch.py"), "--cache",
                               str(tmp_path / "cache"), "--out", str(out)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env={**base, "WANDB_MODE": "disabled", "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "unlearn",
                                   "SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_NNODES": "1",
                                   "SLURM_NODEID": "0", "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank),
                                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
             for rank in (0, 1)]
    try:
        results = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], results[0][1][-3000:] + results[1][1][-3000:]
    records = torch.load(out, weights_only=False)
    assert [r["alone"] for r in records] == [True, False]
    assert [r["agreed"] for r in records] == [True, True]
    assert [(r["joined"], r["backend"], r["timeout_s"], r["same_group"]) for r in records] == [(True, "gloo", 123.0,
                                                                                               True)] * 2
    assert [(r["trainer_rank"], r["trainer_world"], r["steps"]) for r in records] == [(0, 2, 1), (1, 2, 1)]


@pytest.mark.slow
def test_a_torchrun_run_whose_ranks_see_the_cache_apart_teaches_on_every_rank(tmp_path):
    """Rank 1 sees a vanilla model cached that rank 0 does not (published between their looks, or shown to one
    node first): until the thirty-eighth session rank 1 read it while rank 0 taught (here it stops on the missing
    files; with a real model the ranks' collectives fell out of step and hung). Now both teach, as rank 0 decided."""
    proc = _torchrun(Path(__file__).parent / "scripts" / "train_seen_apart.py", "debug=fast", "method=ga",
                     "trainer=ddp_sim", f"hydra.run.dir={tmp_path / 'run'}",
                     env={"UNLEARN_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr[-4000:]
    log = proc.stdout + proc.stderr
    assert log.count("vanilla model missing: teaching") == 2
    assert "vanilla model: reusing" not in log
    assert (tmp_path / "run" / "metrics.json").is_file()


@pytest.mark.parametrize("launcher, warned", [(TORCHRUN_RANK_0, True), (SLURM_TASK_0, False)])
def test_a_decision_without_a_group_is_warned_under_torchrun_only(monkeypatch, caplog, launcher, warned):
    """A batch script's one process carries SLURM's variables too: its decisions are rightly its own."""
    import logging

    for v in list(os.environ):
        if v.startswith(LAUNCHER_PREFIXES) or v in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE"):
            monkeypatch.delenv(v)
    for k, v in launcher.items():
        monkeypatch.setenv(k, v)
    name = f"a decision under {sorted(launcher)[0]}"
    with caplog.at_level(logging.WARNING):
        assert agreed(name, lambda: True) is True
    assert ("decided by this rank alone" in caplog.text) is warned
    os.environ.pop(_env_key(name), None)  # agreed records it for ranks this process would start


def test_a_one_device_trainer_makes_no_group_under_torchrun(monkeypatch):
    """join_outside_launch makes the group only for a strategy that has one (Lightning's ParallelStrategy)."""
    import lightning as L
    import torch.distributed as dist

    from unlearn.agreed import join_outside_launch

    for v in list(os.environ):
        if v.startswith(LAUNCHER_PREFIXES) or v in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE"):
            monkeypatch.delenv(v)
    for k, v in TORCHRUN_RANK_0.items():
        monkeypatch.setenv(k, v)
    made = []

    def trainer():
        made.append(L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                              enable_model_summary=False, enable_checkpointing=False))
        return made[-1]

    assert join_outside_launch(trainer) is False and len(made) == 1 and not dist.is_initialized()


def _only(monkeypatch, *envs):
    for v in list(os.environ):
        if v.startswith(LAUNCHER_PREFIXES) or v in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE"):
            monkeypatch.delenv(v)
    for env in envs:
        for k, v in env.items():
            monkeypatch.setenv(k, v)


def test_torchrun_inside_a_slurm_job_is_torchrun(monkeypatch):
    """torchrun run in a SLURM allocation (one task, torchrun's two processes): Lightning looks for torchelastic
    first, and so does outside_launcher. Mutation audit: SLURM looked for first passed every test."""
    from unlearn.agreed import outside_launch, outside_launcher

    _only(monkeypatch, TORCHRUN_RANK_0, {**SLURM_TASK_0, "SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1"})
    assert outside_launcher() == ("torchrun", 2) and outside_launch()


def test_a_decision_without_a_group_is_warned_once_by_name(monkeypatch, caplog):
    """Mutation audit: the warning repeated at every call of one decision passed every test."""
    import logging

    _only(monkeypatch, TORCHRUN_RANK_0)
    with caplog.at_level(logging.WARNING):
        for name in ("warned once a", "warned once a", "warned once b"):
            agreed(name, lambda: True)
            os.environ.pop(_env_key(name), None)
    assert caplog.text.count("decided by this rank alone") == 2


def test_a_process_group_made_already_is_joined_as_it_is(monkeypatch, tmp_path):
    """join_outside_launch under torchrun where the group exists (a second run in one process): no Trainer, no
    second group. Mutation audit: joining whatever the group's state passed every test."""
    import torch.distributed as dist

    from unlearn.agreed import join_outside_launch

    _only(monkeypatch, TORCHRUN_RANK_0)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        assert join_outside_launch(lambda: pytest.fail("a Trainer made")) is False
    finally:
        dist.destroy_process_group()
