"""A run or sweep into a directory holding a finished run is refused before anything is written."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import seed_cache
from tests.test_cli import finish
from unlearn.run_dir import (CLAIM, CLAIMED_ENV, RANK_VARIABLES, FinishedRunError, RefuseFinishedRuns,
                             RunDirInUseError, check_fresh_run_dir, claim_run_dir, claimed_run_dir, release_run_dir)

ROOT = Path(__file__).resolve().parents[1]


def _finished(d: Path, *names) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name in names:
        (d / name).mkdir() if name == "model" else (d / name).write_text("{}")
    return d


def test_a_finished_run_is_refused_a_failed_or_new_one_is_not(tmp_path):
    check_fresh_run_dir(tmp_path / "new")  # not there yet
    check_fresh_run_dir(_finished(tmp_path / "failed", "config.json"))  # a run that stopped before its metrics
    with pytest.raises(FinishedRunError, match=r"hydra.run.dir=.*done already holds a finished run \(metrics.json\)"):
        check_fresh_run_dir(_finished(tmp_path / "done", "metrics.json"))
    # its model written, its metrics.json not (killed writing its last file): not called finished
    with pytest.raises(FinishedRunError, match=r"paths.output_dir=.*published holds a run's model/ and no metrics.json"):
        check_fresh_run_dir(_finished(tmp_path / "published", "model"), "paths.output_dir")
    both = _finished(tmp_path / "both", "model")
    (both / "metrics.json").write_text("{}")
    with pytest.raises(FinishedRunError, match=r"both already holds a finished run \(metrics.json, model\)"):
        check_fresh_run_dir(both)


def test_the_callback_exits_because_hydra_only_warns_on_a_callbacks_exception(tmp_path):
    callback = RefuseFinishedRuns()
    callback.on_run_start(OmegaConf.create({"hydra": {"run": {"dir": str(tmp_path / "new")}}}))
    with pytest.raises(SystemExit, match="hydra.run.dir=.*choose another hydra.run.dir"):
        callback.on_run_start(OmegaConf.create({"hydra": {"run": {"dir": str(_finished(tmp_path / "a", "model"))}}}))
    sweep = tmp_path / "sweep"
    _finished(sweep / "0_manu", "config.json")  # a failed job only: the sweep may be run again
    callback.on_multirun_start(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))
    _finished(sweep / "1_manu", "metrics.json")
    with pytest.raises(SystemExit, match=r"hydra.sweep.dir=.*already holds finished runs \(.*1_manu\)"):
        callback.on_multirun_start(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))


def test_train_py_stops_before_hydra_writes_into_a_finished_run(tmp_path):
    run = _finished(tmp_path / "run", "metrics.json", "model")
    (run / ".hydra").mkdir()
    (run / ".hydra" / "overrides.yaml").write_text("- manu.alpha=20\n")
    env = {**os.environ, "WANDB_MODE": "disabled", "UNLEARN_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "train.py", "debug=fast", "logger=none", "manu.alpha=5",
                           f"hydra.run.dir={run}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert f"hydra.run.dir={run} already holds a finished run (metrics.json, model)" in done.stderr
    assert (run / ".hydra" / "overrides.yaml").read_text() == "- manu.alpha=20\n"  # the finished run's record
    assert sorted(p.name for p in run.iterdir()) == [".hydra", "metrics.json", "model"]
    assert not (tmp_path / "cache").exists()  # nothing taught or evaluated


def test_a_run_dir_written_with_hydras_resolver_is_checked_before_hydra_writes(tmp_path):
    """`${hydra:...}` resolves only once Hydra has set its config, which it does inside the job, after the
    callbacks: the callback sets it first (else the check became a warning and .hydra/ was overwritten)."""
    run = _finished(tmp_path / "train", "metrics.json")  # hydra.job.name of train.py is "train"
    env = {**os.environ, "WANDB_MODE": "disabled", "UNLEARN_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "train.py", "debug=fast", "logger=none",
                           f"hydra.run.dir={tmp_path}/${{hydra:job.name}}"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 1 and f"hydra.run.dir={run} already holds a finished run" in done.stderr, done.stderr
    assert not (run / ".hydra").exists()


def test_the_pipeline_refuses_too(tmp_path):
    from unlearn.config import compose_config
    from unlearn.pipeline import run

    out = _finished(tmp_path / "run", "metrics.json")
    cfg = compose_config(["debug=fast", "logger=none"], out, tmp_path / "cache")
    with pytest.raises(FinishedRunError, match="paths.output_dir"):
        run(cfg)
    assert json.loads((out / "metrics.json").read_text()) == {} and not (tmp_path / "cache").exists()


def test_a_checkpoints_own_directory_is_never_a_run_dir(tmp_path):
    """`model.path=CKPT hydra.run.dir=CKPT` (or a cached vanilla model's directory): the run's config.json would
    replace the checkpoint's, which then no longer loads; refused before anything is written."""
    ckpt = _finished(tmp_path / "llava_ft", "config.json")
    (ckpt / "model.safetensors").write_bytes(b"\0")
    with pytest.raises(FinishedRunError, match=r"hydra.run.dir=.*llava_ft holds model weights \(model.safetensors\)"):
        check_fresh_run_dir(ckpt)
    with pytest.raises(SystemExit, match="holds model weights"):
        RefuseFinishedRuns().on_run_start(OmegaConf.create({"hydra": {"run": {"dir": str(ckpt)}}}))
    assert (ckpt / "config.json").read_text() == "{}"


def test_the_default_run_dir_names_the_microsecond():
    """Two runs started in one second shared `outputs/<method>/<second>/`, the later one's files over the first's."""
    import re

    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
        cfg = compose("config", overrides=["method=ga"], return_hydra_config=True)
        run, sweep = str(cfg.hydra.run.dir), str(cfg.hydra.sweep.dir)
    stamp = r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d-\d{6}"
    assert re.fullmatch(rf"outputs/ga/{stamp}", run), run
    assert re.fullmatch(rf"multirun/{stamp}", sweep), sweep


def test_a_run_dir_that_cannot_be_made_is_refused_naming_its_key(tmp_path):
    """Under a file (or a read-only mount) the run stopped with a bare NotADirectoryError / OSError that named the
    path, not the setting (until 2026-12-05); Hydra's run dir, the pipeline's output dir and the cache dir now say
    which key to change."""
    from unlearn.config import compose_config
    from unlearn.pipeline import run
    from unlearn.run_dir import NotWritableError

    (tmp_path / "afile").write_text("x")
    with pytest.raises(SystemExit, match=r"hydra.run.dir=.*afile/r cannot hold the run's files"):
        RefuseFinishedRuns().on_run_start(OmegaConf.create({"hydra": {"run": {"dir": str(tmp_path / "afile" / "r")}}}))
    with pytest.raises(NotWritableError, match=r"paths.output_dir=.*afile/run cannot hold"):
        run(compose_config(["debug=fast", "logger=none"], tmp_path / "afile" / "run", tmp_path / "cache"))
    with pytest.raises(NotWritableError, match=r"paths.cache_dir=.*afile/cache cannot hold"):
        run(compose_config(["debug=fast", "logger=none"], tmp_path / "out", tmp_path / "afile" / "cache"))


# --- two runs at once into one directory -----------------------------------------------------------------------

HOLD = """
import sys, time
from unlearn.run_dir import claim_run_dir
claim_run_dir(sys.argv[1], "hydra.run.dir")
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture
def held(tmp_path):
    """A directory claimed by another live process (killed, without any cleanup of its own, at the end)."""
    directory = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in RANK_VARIABLES}
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(directory)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline().strip() == "held"
    yield directory, holder
    holder.kill()
    holder.wait()


def test_a_directory_another_live_run_holds_is_refused_and_freed_when_it_dies_however_it_dies(held, monkeypatch):
    for v in RANK_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    directory, holder = held
    with pytest.raises(RunDirInUseError, match=rf"paths.output_dir={directory} is in use by another run \(pid "
                                               rf"{holder.pid} on .*started .*choose another paths.output_dir"):
        claim_run_dir(directory, "paths.output_dir")
    holder.kill()  # SIGKILL: no atexit, no finally; the operating system drops the lock
    holder.wait()
    assert claim_run_dir(directory, "paths.output_dir")
    assert json.loads((directory / CLAIM).read_text())["pid"] == os.getpid()
    assert not claim_run_dir(directory, "paths.output_dir")  # held by this process already: not taken twice
    release_run_dir(directory)


def test_a_block_releases_only_the_claim_it_took(tmp_path, monkeypatch):
    for v in RANK_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    probe = [sys.executable, "-c", "import sys; from unlearn.run_dir import claim_run_dir; "
             "claim_run_dir(sys.argv[1], 'paths.output_dir')", str(tmp_path)]
    env = {k: v for k, v in os.environ.items() if k not in RANK_VARIABLES}
    taken_elsewhere = lambda: subprocess.run(probe, cwd=ROOT, env=env, capture_output=True, text=True)  # noqa: E731
    with claimed_run_dir(tmp_path, "paths.output_dir"):
        refused = taken_elsewhere()
        assert refused.returncode == 1 and "RunDirInUseError" in refused.stderr
    assert taken_elsewhere().returncode == 0  # released after the block
    assert claim_run_dir(tmp_path, "hydra.run.dir")  # as Hydra's callback claims: for the process
    with claimed_run_dir(tmp_path, "paths.output_dir"):
        pass
    assert taken_elsewhere().returncode == 1  # the block did not take it, so it did not release it
    release_run_dir(tmp_path)


@pytest.mark.parametrize("variable", RANK_VARIABLES)
def test_a_launched_rank_leaves_the_claim_to_rank_0(held, monkeypatch, variable):
    for v in RANK_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    directory, _ = held
    monkeypatch.setenv(variable, "1")  # Lightning's DDP children rerun train.py into rank 0's directory
    assert not claim_run_dir(directory, "hydra.run.dir")
    monkeypatch.setenv(variable, "0")
    with pytest.raises(RunDirInUseError):
        claim_run_dir(directory, "hydra.run.dir")


def test_a_rank_started_by_rank_0_takes_what_rank_0_wrote_into_their_directory_as_its_own(held, monkeypatch):
    """Lightning starts the other ranks at rank 0's first Trainer, after rank 0 may have written into the directory
    it holds: an MMUnlearner run given mmunlearner.mask_path copies the mask in before its first Trainer when the
    before-evaluation is cached (tests/test_ddp_end_to_end.py's later cases). Until 2026-12-07 rank 1 refused the
    directory as another live run's, and Lightning stopped the run. Rank 0's claim reaches the ranks it starts
    through their environment; torchrun's ranks, started beside rank 0, inherit nothing and check as before."""
    for v in (*RANK_VARIABLES, CLAIMED_ENV):
        monkeypatch.delenv(v, raising=False)
    directory, holder = held
    (directory / "mmunlearner").mkdir()
    (directory / "mmunlearner" / "mask.safetensors").write_bytes(b"x")
    bare = OmegaConf.create({"hydra": {"run": {"dir": str(directory)}}})
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(RunDirInUseError, match=rf"in use by another run \(pid {holder.pid}"):  # torchrun's rank 1
        check_fresh_run_dir(directory, "paths.output_dir")
    monkeypatch.setenv(CLAIMED_ENV, str(directory.resolve()))  # a rank the holder started
    check_fresh_run_dir(directory, "paths.output_dir")
    RefuseFinishedRuns().on_run_start(bare)
    monkeypatch.setenv("LOCAL_RANK", "0")  # rank 0 is not excused by a claim in its environment
    with pytest.raises(SystemExit, match="in use by another run"):
        RefuseFinishedRuns().on_run_start(bare)


def test_a_claim_is_named_in_the_environment_until_it_is_released(tmp_path, monkeypatch):
    for v in (*RANK_VARIABLES, CLAIMED_ENV):
        monkeypatch.delenv(v, raising=False)
    assert claim_run_dir(tmp_path / "a", "hydra.run.dir")
    assert os.environ[CLAIMED_ENV] == str((tmp_path / "a").resolve())
    release_run_dir(tmp_path / "a")
    assert CLAIMED_ENV not in os.environ


def test_a_second_sweep_into_a_sweep_dir_in_use_exits(held, monkeypatch):
    for v in RANK_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    directory, _ = held
    with pytest.raises(SystemExit, match=r"hydra.sweep.dir=.* is in use by another run"):
        RefuseFinishedRuns().on_multirun_start(OmegaConf.create({"hydra": {"sweep": {"dir": str(directory)}}}))


def test_train_py_stops_before_hydra_writes_into_a_directory_in_use(held, tmp_path):
    directory, holder = held
    env = {k: v for k, v in os.environ.items() if k not in RANK_VARIABLES}
    env.update(WANDB_MODE="disabled", UNLEARN_CACHE=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "train.py", "debug=fast", "logger=none", f"hydra.run.dir={directory}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert f"hydra.run.dir={directory} is in use by another run (pid {holder.pid} on" in done.stderr, done.stderr
    assert sorted(p.name for p in directory.iterdir()) == [CLAIM]  # no .hydra/, no log: nothing of the second run
    assert not (tmp_path / "cache").exists()


def test_a_run_that_finished_between_the_check_and_the_claim_is_refused_and_the_claim_dropped(tmp_path, monkeypatch):
    import unlearn.run_dir as run_dir

    for v in RANK_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    done = _finished(tmp_path / "run", "metrics.json")  # as if it finished after the caller's own check
    with pytest.raises(FinishedRunError, match="paths.output_dir"):
        claim_run_dir(done, "paths.output_dir")
    assert str(done.resolve()) not in run_dir._claims  # released: the next run into another dir is not held up
    sweep = tmp_path / "sweep"
    original = run_dir.claim_run_dir

    def finishing_meanwhile(*args, **kwargs):
        _finished(sweep / "0_manu", "metrics.json")
        return original(*args, **kwargs)

    monkeypatch.setattr(run_dir, "claim_run_dir", finishing_meanwhile)
    with pytest.raises(SystemExit, match=r"hydra.sweep.dir=.*already holds finished runs"):
        RefuseFinishedRuns().on_multirun_start(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))
    assert str(sweep.resolve()) not in run_dir._claims


def test_another_users_claim_file_is_locked_read_only(tmp_path, monkeypatch):
    """A failed run of another user leaves its .claim (mode 0644): the rerun cannot write it but locks it all the
    same (until the review of 2026-12-05 the open raised a bare PermissionError)."""
    import unlearn.run_dir as run_dir

    for v in RANK_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    (tmp_path / CLAIM).write_text('{"host": "theirs", "pid": 1, "started": "then"}\n')
    real_open = os.open

    def as_another_user(path, flags, *args):  # root reads and writes every file, so the refusal is simulated
        if str(path).endswith(CLAIM) and flags & (os.O_RDWR | os.O_WRONLY):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(run_dir.os, "open", as_another_user)
    assert claim_run_dir(tmp_path, "hydra.run.dir")
    monkeypatch.setattr(run_dir.os, "open", real_open)
    assert json.loads((tmp_path / CLAIM).read_text())["host"] == "theirs"  # not written
    env = {k: v for k, v in os.environ.items() if k not in RANK_VARIABLES}
    other = subprocess.run([sys.executable, "-c", "import sys; from unlearn.run_dir import claim_run_dir; "
                            "claim_run_dir(sys.argv[1], 'hydra.run.dir')", str(tmp_path)], cwd=ROOT, env=env,
                           capture_output=True, text=True)
    assert other.returncode == 1 and "is in use by another run" in other.stderr  # the read-only lock holds
    release_run_dir(tmp_path)


def test_an_interrupted_runs_checkpoint_is_not_written_over(tmp_path):
    """Until 2026-12-05 a run into the directory of one killed mid-training wrote its own last.ckpt over the one
    the errors say to resume from; resuming from it, in place, is allowed."""
    from unlearn.frontier import clear_interrupted

    d = _finished(tmp_path / "killed", "config.json")
    (d / "checkpoints").mkdir()
    (d / "checkpoints" / "last.ckpt").write_bytes(b"x")
    with pytest.raises(FinishedRunError, match=r"holds an interrupted run's checkpoints/last.ckpt.*method.ckpt_path"):
        check_fresh_run_dir(d)
    check_fresh_run_dir(d, reads=[str(d / "checkpoints" / "last.ckpt")])
    (d / "mmunlearner").mkdir()
    (d / "mmunlearner" / "mask.safetensors").write_bytes(b"x")
    with pytest.raises(FinishedRunError, match=r"mmunlearner/mask.safetensors.*: reuse its mask \(mmunlearner.mask_path="
                                               r".*mmunlearner/mask.safetensors, into this directory too\), or move"):
        check_fresh_run_dir(d, reads=[str(d / "checkpoints" / "last.ckpt")])
    manu = _finished(tmp_path / "manu_killed", "config.json")  # MANU's mask: no checkpoint, nothing to resume
    (manu / "manu").mkdir()
    (manu / "manu" / "mask.safetensors").write_bytes(b"x")
    with pytest.raises(FinishedRunError, match=r"manu/mask.safetensors, which a run into it would write over; nothing "
                                               r"was written: choose another hydra.run.dir \(the run was killed before "
                                               r"its metrics.json; nothing resumes from these files, and a run makes "
                                               r"them again\), or move them away$"):
        check_fresh_run_dir(manu)
    with pytest.raises(SystemExit, match=r"interrupted run's checkpoints/last.ckpt"):
        RefuseFinishedRuns().on_run_start(OmegaConf.create({"hydra": {"run": {"dir": str(d)}}}))
    # the killed run's .hydra/config.yaml names its method, and the advice names that method's key alone: a
    # teaching's rerun was told method.ckpt_path first, which method=finetune does not read (until 2026-12-07)
    (d / ".hydra").mkdir()
    for method, key in (("finetune", r"\+finetune.ckpt_path="), ("npo", "method.ckpt_path=")):
        (d / ".hydra" / "config.yaml").write_text(f"method:\n  name: {method}\n")
        with pytest.raises(FinishedRunError, match=rf"resume it \({key}{d}/checkpoints/last.ckpt, the same command with "
                                                   rf"it added\), or reuse its mask"):
            check_fresh_run_dir(d)
    RefuseFinishedRuns().on_run_start(OmegaConf.create({
        "hydra": {"run": {"dir": str(d)}}, "method": {"ckpt_path": str(d / "checkpoints" / "last.ckpt")},
        "mmunlearner": {"mask_path": str(d / "mmunlearner" / "mask.safetensors")}}))
    release_run_dir(d)
    clear_interrupted(d)  # a frontier sweep's own run, killed: started again from nothing
    check_fresh_run_dir(d)
    assert (d / "config.json").is_file()


@pytest.mark.slow
def test_a_sweep_job_into_an_earlier_jobs_directory_is_refused_and_its_record_kept(tmp_path, taught_fast):
    """hydra.sweep.subdir=${method.name} over two seeds: job 1 wrote its .hydra/ over job 0's finished run (its
    overrides then said seed=1 beside seed 0's metrics) and the refusal said nothing was written, until 2026-12-05.
    Since 2026-12-06 a subdir the pre-check can read is refused before any job runs; one it cannot (Hydra's own job
    fields, ${hydra:job.name}) is refused as the second job starts, the first's record kept."""
    def sweep(subdir, where):
        return subprocess.Popen([sys.executable, "train.py", "-m", "method=ga", "seed=0,1", "debug=fast",
                                 f"hydra.sweep.dir={tmp_path / where}", f"hydra.sweep.subdir={subdir}"], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "UNLEARN_CACHE": str(tmp_path / "cache"), "WANDB_MODE": "disabled"})

    seed_cache(taught_fast, tmp_path / "cache")  # job 0's vanilla model: what is tested is the sweep's directories
    early, proc = sweep("${method.name}", "early"), sweep("${hydra:job.name}", "sweep")  # side by side
    early, proc = finish(early), finish(proc)
    assert early.returncode != 0 and "jobs 0 and 1 of 2 would write into" in early.stderr
    assert not (tmp_path / "early").exists()
    assert proc.returncode != 0
    assert "job 1 writes into" in proc.stderr and "hydra.sweep.subdir must differ between jobs" in proc.stderr
    job = tmp_path / "sweep" / "train"
    assert json.loads((job / "metrics.json").read_text())["seed"] == 0
    assert "seed=0" in (job / ".hydra" / "overrides.yaml").read_text()


def test_an_interrupted_atomic_write_is_not_an_interrupted_run(tmp_path):
    """A run killed while it wrote model/ leaves its temporary .model.<x>.partial: nothing to resume, and until
    2026-12-05 the next run into the directory was refused with advice to resume it."""
    partial = tmp_path / "run" / ".model.x1y2.partial"
    partial.mkdir(parents=True)
    (partial / "model.safetensors").write_bytes(b"half")
    check_fresh_run_dir(tmp_path / "run")
    (tmp_path / "run" / "checkpoints").mkdir()
    (tmp_path / "run" / "checkpoints" / "last.ckpt").write_bytes(b"x")  # beside a real one, only that is named
    with pytest.raises(FinishedRunError, match=r"interrupted run's checkpoints/last.ckpt, which"):
        check_fresh_run_dir(tmp_path / "run")


def test_a_live_runs_own_checkpoint_is_named_as_a_run_in_use(held, monkeypatch):
    """The claim is tried before the directory's files are read: a live run that has written its last.ckpt was
    named as an interrupted run to resume (until 2026-12-05)."""
    for v in RANK_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    directory, holder = held
    (directory / "checkpoints").mkdir()
    (directory / "checkpoints" / "last.ckpt").write_bytes(b"x")
    with pytest.raises(SystemExit, match=rf"hydra.run.dir={directory} is in use by another run \(pid {holder.pid}"):
        RefuseFinishedRuns().on_run_start(OmegaConf.create({"hydra": {"run": {"dir": str(directory)}}}))


def test_the_evaluation_is_written_before_the_weights_and_a_methods_tensors_reach_metrics_json(tmp_path, monkeypatch):
    """Until 2026-12-06 model/ came first: a disk full at items.json left a directory named finished, its evaluation
    lost; and a tensor in ctx.artifacts failed metrics.json at the very end of the run."""
    import errno
    import json

    import torch

    from unlearn import pipeline
    from unlearn.config import compose_config
    from unlearn.methods import finetune

    def teach(ctx, fcfg, **where):
        ctx.artifacts["kept"] = torch.tensor(3)  # what a method of one's own might keep: mask.sum()

    monkeypatch.setattr(finetune, "teach", teach)
    write_json = pipeline.write_json

    def disk_full(path, obj, indent=2):
        if path.name == "items.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        write_json(path, obj, indent)

    def run(out, full):
        monkeypatch.setattr(pipeline, "write_json", disk_full if full else write_json)
        pipeline.run(compose_config(["logger=none", "debug=fast", "method=finetune", "eval.before=false",
                                     "eval.tasks=[mc]", "eval.max_people=2"], out, tmp_path / "cache"))

    with pytest.raises(OSError, match="No space left"):
        run(tmp_path / "full", True)
    assert not (tmp_path / "full" / "model").exists()
    check_fresh_run_dir(tmp_path / "full")  # not named finished: the run may be made again into it
    run(tmp_path / "ok", False)
    assert json.loads((tmp_path / "ok" / "metrics.json").read_text())["artifacts"]["kept"] == 3
    assert (tmp_path / "ok" / "model").is_dir()


def test_a_value_a_method_returns_is_named_not_dropped(tmp_path, monkeypatch, caplog):
    """`return model.merge_and_unload()` in a method of one's own: the pipeline evaluates ctx.model, so the
    returned model was dropped without a word (until 2026-12-06)."""
    import logging

    from unlearn import pipeline
    from unlearn.config import compose_config
    from unlearn.methods import finetune

    monkeypatch.setattr(finetune, "run", lambda ctx: ctx.model)
    with caplog.at_level(logging.WARNING, logger="unlearn.pipeline"):
        pipeline.run(compose_config(["logger=none", "debug=fast", "method=finetune", "eval.before=false",
                                     "eval.tasks=[mc]", "eval.max_people=2"], tmp_path / "r", tmp_path / "cache"))
    assert "method.run returned a" in caplog.text and "assign a new model there: ctx.model = ..." in caplog.text


def test_a_sweeps_jobs_are_read_with_glob_and_their_interpolations_left_to_them(tmp_path):
    """glob() needs the app's config loader (until 2026-12-06 "ConfigLoader is not set": the pre-check and the
    sweep's lock skipped), and `seed=${hydra:job.num}` is the job's to read (it was read in the sweep's process:
    seed=None, the sweep refused). A job with an interpolated override is left to its own check."""
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from unlearn.config import CONFIG_DIR
    from unlearn.run_dir import check_every_job, sweep_jobs

    with initialize_config_dir(str(CONFIG_DIR), version_base=None):
        cfg = compose("config", overrides=["debug=fast"], return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.sweep.dir = str(tmp_path / "sweep")
            cfg.hydra.job.config_name = "config"
            cfg.paths.cache_dir = str(tmp_path / "cache")
            cfg.hydra.overrides.task = ["debug=fast", "seed=${hydra:job.num}", "method=glob(g*,exclude=[grad_diff])",
                                        "method.optimizer.lr=1e-4,2e-4"]
        jobs = sweep_jobs(cfg)
        assert [[o for o in job if o.startswith(("method", "seed"))] for job in jobs] == [
            ["seed=$\\{hydra\\:job.num\\}", "method=ga", "method.optimizer.lr=0.0001"],
            ["seed=$\\{hydra\\:job.num\\}", "method=ga", "method.optimizer.lr=0.0002"]]
        check_every_job(cfg)  # not refused as seed=None
        with open_dict(cfg):
            cfg.hydra.overrides.task = ["debug=fast", "method=glob(g*,exclude=[grad_diff])", "method.optimizer.lr=1e-4,abc"]
        with pytest.raises(SystemExit, match=r"job 1 of 2 .*method.optimizer.lr='abc'"):
            check_every_job(cfg)
        # the optimisers are built once every job's other checks passed (a build imports torch), and a refused
        # build still names its job
        with open_dict(cfg):
            cfg.hydra.overrides.task = ["debug=fast", "method=ga", "method.optimizer.weight_decay=-1,0",
                                        "method.epochs=1,0"]
        with pytest.raises(SystemExit, match=r"job 1 of 4 \(.*method.epochs=0\): method.epochs=0"):
            check_every_job(cfg)
        with open_dict(cfg):
            cfg.hydra.overrides.task = ["debug=fast", "method=ga", "method.optimizer.weight_decay=0,-1"]
        with pytest.raises(SystemExit, match=r"job 1 of 2 \(.*weight_decay=-1\): method.optimizer: ValueError: "
                                             r"Invalid weight_decay value: -1.*no job has run"):
            check_every_job(cfg)
        # two jobs into one hydra.sweep.subdir: refused before the first runs (until 2026-12-06 when the second
        # started, after the first had run)
        with open_dict(cfg):
            cfg.hydra.overrides.task = ["debug=fast", "method=ga", "seed=0,1"]
            cfg.hydra.sweep.subdir = "${method.name}_lr${method.optimizer.lr}"
        with pytest.raises(SystemExit, match=r"jobs 0 and 1 of 2 would write into .*ga_lr5e-05: hydra.sweep.subdir="):
            check_every_job(cfg)
        with open_dict(cfg):
            cfg.hydra.sweep.subdir = "${method.name}_s${seed}"
        check_every_job(cfg)  # a subdir that differs by job


def test_a_finished_output_dir_is_a_refusal_train_py_prints_alone(tmp_path):
    """paths.output_dir set apart from hydra.run.dir, at a finished run: refused before anything ran, so train.py
    prints the message alone (until 2026-12-06 after Hydra's traceback)."""
    from unlearn import pipeline
    from unlearn.config import compose_config
    from unlearn.settings import refused_before_run

    done = _finished(tmp_path / "done", "metrics.json")
    with pytest.raises(FinishedRunError) as caught:
        pipeline.run(compose_config(["logger=none", "debug=fast"], done, tmp_path / "cache"))
    assert refused_before_run(caught.value)


def test_a_killed_runs_scratch_is_removed_once_its_directory_is_claimed_again(tmp_path):
    """A `kill -9` while a run wrote last.ckpt or model/ leaves their scratch; a resume or rerun straight after it
    (the frontier's rerun of its sweep) holds the directory's claim, so no live run of it writes them: removed now.
    Until 2026-12-07 they waited for 10 quiet minutes and a later write of the same file, and stayed for good (the
    frontier's finished point kept its killed run's 5 MB .last.ckpt temp; at 7B tens of GB)."""
    from unlearn.io import _writer

    gone = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    host = _writer().rsplit("-", 1)[0]
    d = tmp_path / "run"
    (d / "checkpoints").mkdir(parents=True)
    ckpt_temp = d / "checkpoints" / f".last.ckpt.{host}-{gone}.ab_c12de.tmp"
    model_scratch = d / f".model.{host}-{gone}.xyz98765.partial"
    elsewhere = d / "checkpoints" / f".last.ckpt.otherhost-{gone}.ab_c12de.tmp"  # another machine's: its own
    ours = d / f".items.json.{_writer()}.q1w2e3r4.tmp"  # this live process's
    ckpt_temp.write_bytes(b"half"), elsewhere.write_bytes(b"half"), ours.write_bytes(b"half")
    model_scratch.mkdir(), (model_scratch / "model.safetensors").write_bytes(b"half")
    (d / "checkpoints" / "last.ckpt").write_bytes(b"whole")
    assert claim_run_dir(d, "hydra.run.dir", recheck=lambda *a: None)  # a resume: its checkpoint is read
    try:
        assert not ckpt_temp.exists() and not model_scratch.exists()
        assert elsewhere.exists() and ours.exists() and (d / "checkpoints" / "last.ckpt").read_bytes() == b"whole"
    finally:
        release_run_dir(d)


def test_a_sweep_run_killed_between_its_model_and_its_metrics_is_run_again(tmp_path):
    """The frontier under `--base save_model=true`: model/ is written before metrics.json, so a kill between them
    left a directory every run into it refuses (run_dir: model/ and no metrics.json), and until 2026-12-07 each
    rerun of the sweep stopped at that point. It is the sweep's own unfinished run: cleared like its checkpoint."""
    from unlearn.frontier import clear_interrupted

    d = _finished(tmp_path / "killed", "config.json", "items.json", "model")
    (d / "model" / "model.safetensors").write_bytes(b"x")
    (d / "checkpoints").mkdir()
    (d / "checkpoints" / "last.ckpt").write_bytes(b"x")
    with pytest.raises(FinishedRunError, match=r"holds a run's model/ and no metrics.json"):
        check_fresh_run_dir(d)
    clear_interrupted(d)
    check_fresh_run_dir(d)
    assert not (d / "model").exists() and (d / "items.json").is_file()
    done = _finished(tmp_path / "done", "metrics.json", "model")  # a finished point: kept whole
    clear_interrupted(done)
    assert (done / "model").is_dir() and (done / "metrics.json").is_file()


def test_a_teaching_killed_while_writing_names_its_resume(tmp_path):
    """A teaching killed after its model/ and before metrics.json: its last.ckpt restores the weights without
    teaching, but a run into the directory is refused for its model/, and the refusal did not say the checkpoint
    resumes elsewhere (until 2026-12-07)."""
    d = _finished(tmp_path / "killed", "model")
    (d / "checkpoints").mkdir()
    (d / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (d / ".hydra").mkdir()
    (d / ".hydra" / "config.yaml").write_text("method:\n  name: finetune\n")
    with pytest.raises(FinishedRunError, match=rf"move model/ away; its checkpoint resumes into another hydra.run.dir "
                                               rf"with \+finetune.ckpt_path={d}/checkpoints/last.ckpt \(the same "
                                               rf"command with both changed\)$"):
        check_fresh_run_dir(d, reads=[str(d / "checkpoints" / "last.ckpt")])
    (d / "checkpoints" / "last.ckpt").unlink()
    with pytest.raises(FinishedRunError, match=r"move model/ away$"):
        check_fresh_run_dir(d)


def test_an_unlearning_run_killed_in_its_cache_teaching_names_the_teaching_resume(tmp_path):
    """An unlearning run killed while it taught its vanilla model into the cache leaves
    checkpoints/teaching/last.ckpt, which +finetune.ckpt_path resumes whatever the run's method: the refusal names
    that key and file (the method's own method.ckpt_path named a checkpoints/last.ckpt that is not there); once the
    method's own last.ckpt is there too, the method's resume is named."""
    d = _finished(tmp_path / "killed", "config.json")
    (d / "checkpoints" / "teaching").mkdir(parents=True)
    (d / "checkpoints" / "teaching" / "last.ckpt").write_bytes(b"x")
    (d / ".hydra").mkdir()
    (d / ".hydra" / "config.yaml").write_text("method:\n  name: manu\n")
    with pytest.raises(FinishedRunError, match=rf"interrupted run's checkpoints/teaching/last.ckpt, .*: resume it "
                                               rf"\(\+finetune.ckpt_path={d}/checkpoints/teaching/last.ckpt, the same "
                                               rf"command with it added\), or move them away$"):
        check_fresh_run_dir(d)
    check_fresh_run_dir(d, reads=[str(d / "checkpoints" / "teaching" / "last.ckpt")])  # resumed into it
    (d / ".hydra" / "config.yaml").unlink()  # unreadable: the teaching folder alone names its key
    with pytest.raises(FinishedRunError, match=rf"\(\+finetune.ckpt_path={d}/checkpoints/teaching/last.ckpt, "):
        check_fresh_run_dir(d)
    (d / ".hydra" / "config.yaml").write_text("method:\n  name: ga\n")
    (d / "checkpoints" / "last.ckpt").write_bytes(b"x")
    with pytest.raises(FinishedRunError, match=rf"resume it \(method.ckpt_path={d}/checkpoints/last.ckpt, "):
        check_fresh_run_dir(d)
    (d / "checkpoints" / "last.ckpt").unlink()
    (d / "model").mkdir()  # killed writing its last files: resumed elsewhere
    with pytest.raises(FinishedRunError, match=rf"move model/ away; its checkpoint resumes into another hydra.run.dir "
                                               rf"with \+finetune.ckpt_path={d}/checkpoints/teaching/last.ckpt "):
        check_fresh_run_dir(d)
