"""A run never starts in a directory that holds a finished run.

Why: a second run into the same `hydra.run.dir` (a re-typed command, a re-run sweep) would do all its work,
replace the first run's method artifacts and Hydra's record of its overrides, and only then be refused when it
came to publish its model, leaving a directory whose model and metrics say one run and whose mask and overrides
say another. So it is refused before anything is written: by the Hydra callback before Hydra saves the job's
config (`.hydra/`), and again by `pipeline.run` for callers that do not go through Hydra. A directory holding a
run that failed (no metrics, no model) may be run into again.

Nor do two runs write into one directory at once (two terminals, or array jobs, given one explicit
`hydra.run.dir`): neither has finished, so both would pass the check above and the later one's files would replace
the earlier one's as they went. The first claims the directory (`claim_run_dir`: an exclusive lock on its
`.claim` file, which the operating system drops when the process ends however it ends, so a killed run leaves
no stale claim); the second is refused while the first is alive. The lock is flock's: on a filesystem that
keeps such locks per node (Lustre mounted with `localflock`, BeeGFS by default) runs on two nodes are not
refused, and on one that has none the run warns and goes on unclaimed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from hydra.experimental.callback import Callback

FINISHED = ("metrics.json", "model")  # what only a finished run leaves


class FinishedRunError(FileExistsError):
    pass


class NotWritableError(OSError):
    pass


class RunDirInUseError(FileExistsError):
    pass


log = logging.getLogger(__name__)
CLAIM = ".claim"  # holds the claiming run's host, pid and start, for the refusal to name
_claims: dict[str, int] = {}  # directory (resolved) -> the open, locked claim file of this process
# set to the rank of a process a launcher started (Lightning's DDP children, torchrun, srun): rank 0 claims for all
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")
# the directory this process claimed last, in its environment: the ranks Lightning's launcher starts from it inherit
# it, and so know the directory as their own run's (RefuseFinishedRuns)
CLAIMED_ENV = "UNLEARN_CLAIMED_RUN_DIR"


def launched_rank() -> bool:
    """A process of a distributed run other than its first: it shares rank 0's directory, claimed by rank 0."""
    return any(os.environ.get(v, "0").strip() not in ("", "0") for v in RANK_VARIABLES)


def global_zero() -> bool:
    """Rank 0, also before any process group exists: a rank Lightning's launcher or torchrun started is not
    (until 2026-12-05 every rank was, until its first Trainer, and wrote what rank 0 writes). What only one process
    of a run should do or say (every rank loads the benchmark, before its first Trainer) asks this."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return not launched_rank()


def claim_run_dir(directory, key: str = "hydra.run.dir", recheck=None) -> bool:
    """Claim `directory` for this process, or refuse naming `key` when a live run holds it. True when this call took
    the claim (False: this process holds it already, a rank other than 0, or a filesystem without locks, warned).
    `recheck(directory, key)`, once claimed: the caller's refusal of a finished run again (one may have ended
    between the caller's check and this claim), `check_fresh_run_dir` by default; the claim is released when it
    refuses."""
    try:
        import fcntl
    except ImportError:  # not a POSIX system: no claim, as before
        return False
    if launched_rank():
        return False
    path = Path(str(directory)).resolve()
    if str(path) in _claims:
        return False
    path.mkdir(parents=True, exist_ok=True)
    writable = True
    try:
        fd = os.open(path / CLAIM, os.O_RDWR | os.O_CREAT, 0o644)
    except PermissionError:  # another user's claim file, left by a run that ended: a read-only one locks as well
        writable = False
        try:
            fd = os.open(path / CLAIM, os.O_RDONLY)
        except OSError as e:
            raise NotWritableError(f"{key}={directory}: cannot open its {CLAIM} file ({e.strerror or e}); choose "
                                   f"another {key}") from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise RunDirInUseError(f"{key}={directory} is in use by another run ({holder}): two runs into one directory "
                               f"would write over each other's files; nothing was written: choose another {key}")
    except OSError as e:  # a filesystem without flock (some network mounts): run unclaimed, as before
        os.close(fd)
        log.warning("%s=%s: cannot lock %s (%s); a second run into it at the same time would not be refused", key,
                    directory, path / CLAIM, e.strerror or e)
        return False
    if writable:
        record = {"host": socket.gethostname(), "pid": os.getpid(),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)  # the file stays (unlinking a lock file lets a third run lock a new one beside the held)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    _claims[str(path)] = fd
    try:
        (recheck or check_fresh_run_dir)(directory, key)
    except BaseException:  # FinishedRunError, or a callback's SystemExit
        release_run_dir(directory)
        raise
    os.environ[CLAIMED_ENV] = str(path)
    remove_killed_writes(path)
    return True


def remove_killed_writes(directory: Path) -> list[Path]:
    """The scratch directories and temp files a killed run of `directory` left on this host (its model/'s, a
    last.ckpt's: a 7B one's tens of GB), removed once this process holds the directory's claim: no live run of it
    can be writing them then (the claim is the kernel's lock, across pid namespaces). Until 2026-12-07 they waited
    for 10 quiet minutes and a later write of the same file, so a rerun or resume straight after a `kill -9` left
    them for good."""
    from unlearn.io import remove_dead_writers_under

    removed = remove_dead_writers_under(directory, idle_s=0)
    for path in removed:
        log.info("%s: removed %s, left by a killed run", directory, path.relative_to(directory))
    return removed


def _holder(fd: int) -> str:
    try:
        record = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {record['pid']} on {record['host']}, started {record['started']}"
    except (ValueError, KeyError, TypeError, OSError):
        return "its record unreadable"


def release_run_dir(directory) -> None:
    path = str(Path(str(directory)).resolve())
    fd = _claims.pop(path, None)
    if fd is not None:
        os.close(fd)  # closing drops the lock
    if os.environ.get(CLAIMED_ENV) == path:
        del os.environ[CLAIMED_ENV]


def started_into_rank0s_dir(directory) -> bool:
    """A rank Lightning's launcher started from rank 0 (launched_rank, and rank 0's claim of `directory` in its
    environment): rank 0 checked the directory and holds it, and what is in it now is their run's own. Lightning
    starts them at rank 0's first Trainer, after rank 0 may have written there: until 2026-12-07 an MMUnlearner run
    given `mmunlearner.mask_path`, whose before-evaluation was cached, had its mask copied in before that Trainer, and
    rank 1 refused the directory as another live run's, which stopped the run (Lightning kills every rank).
    torchrun's and srun's ranks start together with rank 0, inherit nothing from it, and check it as rank 0 does."""
    return launched_rank() and os.environ.get(CLAIMED_ENV) == str(Path(str(directory)).resolve())


def live_holder(directory) -> str | None:
    """Who holds `directory`'s claim, where another live run does (None: nobody, this process, or no claim file);
    the claim file is read, never created."""
    try:
        import fcntl
    except ImportError:
        return None
    path = Path(str(directory)).resolve()
    if str(path) in _claims or not (path / CLAIM).is_file():
        return None
    try:
        fd = os.open(path / CLAIM, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(fd)
    except OSError:
        return None
    finally:
        os.close(fd)  # closing drops a lock this call took
    return None


@contextmanager
def claimed_run_dir(directory, key: str, reads=()):
    """The directory claimed while the block runs; released after it only if this block took the claim (a claim the
    Hydra callback took lasts the process)."""
    took = claim_run_dir(directory, key, recheck=lambda d, k: check_fresh_run_dir(d, k, reads))
    try:
        yield
    finally:
        if took:
            release_run_dir(directory)


def finished_outputs(directory: Path) -> list[Path]:
    return [directory / name for name in FINISHED if (directory / name).exists()]


WEIGHTS = ("*.safetensors", "*.bin", "*.pt")  # a run writes weights only under model/: these name a checkpoint


INTERRUPTED = ("**/*.ckpt", "**/*.safetensors")  # what an interrupted run leaves to resume or reuse


def check_fresh_run_dir(directory, key: str = "hydra.run.dir", reads=()) -> None:
    """Refuse a run dir that holds a finished run, or model weights: a checkpoint's own directory (model.path, a
    cached vanilla model), whose config.json the run's would replace (until the thirty-first session it did); or
    an interrupted run's checkpoint or mask (until 2026-12-05 a run into it wrote its own last.ckpt over the one
    the error messages say to resume from). `reads`: the files this run reads (method.ckpt_path, a mask path):
    resuming from a checkpoint in its own directory is a resume, not a loss. Not checked by the ranks rank 0 started
    (started_into_rank0s_dir): what they find there is their run's own."""
    if started_into_rank0s_dir(directory):
        return
    done = finished_outputs(Path(directory))
    if done and not (Path(directory) / "metrics.json").is_file():  # its model written, its metrics.json not
        # a teaching killed there keeps its last.ckpt, which restores its weights without teaching
        # (docs/guide/teaching_and_cache.md): until 2026-12-07 nothing here said so, and the resume the docs give,
        # into the same directory, is refused by this very check
        resume = ""
        resume_key, last = interrupted_checkpoint(directory)
        if last.is_file() and resume_key is not None:
            resume = (f"; its checkpoint resumes into another {key} with {resume_key}={last} (the same command "
                      "with both changed)")
        raise FinishedRunError(f"{key}={directory} holds a run's model/ and no metrics.json (killed while writing its "
                               "last file, or a disk full: its evaluation is in items.json and results.md, where "
                               f"written); nothing was written: choose another {key}, or move model/ away{resume}")
    if done:
        raise FinishedRunError(f"{key}={directory} already holds a finished run ({', '.join(p.name for p in done)}); "
                               f"nothing was written: choose another {key}")
    weights = sorted(p.name for pattern in WEIGHTS for p in Path(directory).glob(pattern))
    if weights:
        raise FinishedRunError(f"{key}={directory} holds model weights ({', '.join(weights[:3])}): a checkpoint's "
                               f"directory, whose files a run would write over; nothing was written: choose another "
                               f"{key}")
    read = {Path(str(r)).expanduser().resolve() for r in reads if r}
    # an interrupted atomic write's temporary directory (.model.x1y2.partial, unlearn/io.py) holds no result to
    # resume: until 2026-12-05 it was named as an interrupted run's checkpoint, with resume advice
    kept = sorted({p for pattern in INTERRUPTED for p in Path(directory).glob(pattern)
                   if p.is_file() and p.resolve() not in read
                   and not any(part.endswith(".partial") for part in p.relative_to(directory).parts[:-1])})
    # a live run's own checkpoint (until 2026-12-05 named as an interrupted run's, with advice to resume it)
    if kept and (holder := live_holder(directory)):
        raise RunDirInUseError(f"{key}={directory} is in use by another run ({holder}): two runs into one directory "
                               f"would write over each other's files; nothing was written: choose another {key}")
    if kept:
        shown = ", ".join(str(p.relative_to(directory)) for p in kept[:3])
        ways = []  # what each kept file is for (until 2026-12-06 a gradient method's advice whatever was there)
        if any(p.suffix == ".ckpt" for p in kept):
            # the interrupted run's own .hydra/config.yaml names its method: a teaching's rerun was told
            # method.ckpt_path first (until 2026-12-07), which method=finetune does not read
            resume_key, last = interrupted_checkpoint(directory)
            if resume_key is not None:
                ways.append(f"resume it ({resume_key}={last}, the same command with it added)")
            else:
                ways.append(f"resume it (method.ckpt_path={directory}/checkpoints/last.ckpt, the run's method; a "
                            f"teaching's, method=finetune: +finetune.ckpt_path=...)")
        if mask := next((p for p in kept if p.parent.name == "mmunlearner" and p.suffix == ".safetensors"), None):
            ways.append(f"reuse its mask (mmunlearner.mask_path={mask}, into this directory too)")
        # nothing resumes from the rest (MANU's mask, killed before metrics.json): until 2026-12-07 the refusal said
        # only "move them away", not that they were an unfinished run's, which a run elsewhere makes again
        if not ways:
            ways.append(f"choose another {key} (the run was killed before its metrics.json; nothing resumes from "
                        "these files, and a run makes them again)")
        raise FinishedRunError(f"{key}={directory} holds an interrupted run's {shown}, which a run into it would write "
                               f"over; nothing was written: {', or '.join(ways + ['move them away'])}")


def resume_key_of(directory) -> str | None:
    """The key that resumes the run that left `directory`'s checkpoint: `+finetune.ckpt_path` for a teaching,
    method.ckpt_path for any other method, by the method its .hydra/config.yaml names (Hydra writes it as the job
    starts); None where that cannot be read."""
    import yaml

    from unlearn.teaching_resume import GIVEN_AS

    try:
        config = yaml.safe_load((Path(directory) / ".hydra" / "config.yaml").read_text())
        name = config["method"]["name"]
    except Exception:  # noqa: BLE001 - absent, unreadable or of another shape: the advice names both keys
        return None
    if not isinstance(name, str):
        return None
    return GIVEN_AS if name == "finetune" else "method.ckpt_path"


def interrupted_checkpoint(directory) -> tuple[str | None, Path]:
    """The checkpoint an interrupted run of `directory` resumes from, and the key that resumes it (None: unknown):
    the method's own <dir>/checkpoints/last.ckpt (resume_key_of), or, where only the cache's teaching inside an
    unlearning run wrote one (until the fifty-fourth session it wrote none), its
    <dir>/checkpoints/teaching/last.ckpt, which +finetune.ckpt_path resumes whatever the run's method."""
    from unlearn.teaching_resume import GIVEN_AS, cache_teaching_dir

    last = Path(str(directory)) / "checkpoints" / "last.ckpt"
    teaching = cache_teaching_dir(directory) / "last.ckpt"
    if not last.is_file() and teaching.is_file():
        return GIVEN_AS, teaching
    return resume_key_of(directory), last


def run_reads(cfg) -> list[str]:
    """The files of an earlier run that this run reads (check_fresh_run_dir's `reads`)."""
    from omegaconf import OmegaConf

    found = []
    for key in ("method.ckpt_path", "finetune.ckpt_path", "mmunlearner.mask_path"):
        try:
            value = OmegaConf.select(cfg, key, default=None)
        except Exception:  # noqa: BLE001 - an unresolvable value is refused by name later, by the settings checks
            value = None
        if value:
            found.append(str(value))
    return found


def unwritable(directory) -> str | None:
    """Why `directory`, made as a run would make it, cannot take files; None where it can."""
    path = Path(str(directory))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return str(e.strerror or e)
    return None if os.access(path, os.W_OK | os.X_OK) else f"{path} is not writable"


def check_writable_dir(directory, key: str) -> None:
    """Make `directory` (as the run would) or refuse naming `key`: a read-only or non-directory path stopped the run
    with a bare OSError or NotADirectoryError, naming the path and not the setting (until 2026-12-05)."""
    if why := unwritable(directory):
        raise NotWritableError(f"{key}={directory} cannot hold the run's files ({why}); choose another {key}")


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
        reads = run_reads(config)
        try:
            check_fresh_run_dir(config.hydra.run.dir, "hydra.run.dir", reads)
            check_writable_dir(config.hydra.run.dir, "hydra.run.dir")
            claim_run_dir(config.hydra.run.dir, "hydra.run.dir",
                          recheck=lambda d, k: check_fresh_run_dir(d, k, reads))
        except (FinishedRunError, NotWritableError, RunDirInUseError) as e:
            raise SystemExit(f"Error: {e}") from e

    def on_job_end(self, config, job_return=None, **kwargs) -> None:
        """A sweep job's record (.hydra/), kept: a later job of the same sweep in the same directory (a
        hydra.sweep.subdir that does not vary by job) has it replaced by the time any callback runs."""
        out = Path(str(config.hydra.runtime.output_dir))
        record = out / str(config.hydra.output_subdir or ".hydra")
        if record.is_dir():
            self.__dict__.setdefault("_records", {})[str(out.resolve())] = (
                record, {p.name: p.read_bytes() for p in record.iterdir() if p.is_file()})

    def on_job_start(self, config, **kwargs) -> None:
        """Refuse a sweep job whose directory an earlier job of the sweep used, putting that job's record back
        (until 2026-12-05 its overrides.yaml said the later job's seed while its metrics were the earlier one's,
        and the refusal said nothing was written)."""
        out = Path(str(config.hydra.runtime.output_dir)).resolve()
        earlier = self.__dict__.get("_records", {}).get(str(out))
        if earlier is None:
            return
        record, files = earlier
        for name, data in files.items():
            (record / name).write_bytes(data)
        raise SystemExit(f"Error: this sweep's job {config.hydra.job.num} writes into {out}, where an earlier job of "
                         "the same sweep ran: hydra.sweep.subdir must differ between jobs (configs/config.yaml's is "
                         "${hydra.job.num}_${method.name}: keep ${hydra.job.num} in yours); the earlier job's record "
                         "is as it was")

    def on_multirun_start(self, config, **kwargs) -> None:
        _resolvable(config)
        sweep = Path(config.hydra.sweep.dir)
        _refuse_finished_sweep(sweep)
        try:
            check_every_job(config)
        except SystemExit:
            raise
        except Exception as e:  # noqa: BLE001 - Hydra would turn it into a warning and skip the lock below too
            log.warning("the sweep's jobs could not be checked before the first runs (%s: %s); each job is checked "
                        "as it starts", type(e).__name__, e)
        try:  # two sweeps into one directory at once would write each other's jobs (their numbers restart at 0)
            claim_run_dir(sweep, "hydra.sweep.dir", recheck=_refuse_finished_sweep)
        except (RunDirInUseError, NotWritableError) as e:
            raise SystemExit(f"Error: {e}") from e


def sweep_jobs(config) -> list[list[str]]:
    """The overrides of each job of a `-m` sweep, as Hydra's basic sweeper expands the command line's (and
    hydra.sweeper.params')."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    # as written: an override's interpolation (`seed=${hydra:job.num}`) is the job's to read (until 2026-12-06
    # read here, in the sweep's process: seed=None, refused)
    raw = OmegaConf.to_container(config.hydra, resolve=False)
    params = [f"{k}={v}" for k, v in ((raw.get("sweeper") or {}).get("params") or {}).items()]
    task = raw["overrides"]["task"]
    # the running app's config loader: glob() lists a config group's options through it (until 2026-12-06 missing:
    # "ConfigLoader is not set", the check and the sweep's lock skipped)
    loader = GlobalHydra.instance().config_loader() if GlobalHydra.instance().is_initialized() else None
    parsed = OverridesParser.create(config_loader=loader).parse_overrides([*params, *task])
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def check_every_job(config) -> None:
    """Each job's settings, checked before the sweep's first job runs: until 2026-12-05 a bad value in a sweep
    (`method.optimizer.lr=1e-4,abc,2e-4`) stopped the sweep at its job, after the jobs before it, and the jobs
    after it never ran. Each job's config is composed as Hydra will compose it, its paths set as the run's. The jobs'
    optimisers and schedulers are built once every job's other checks passed: a build imports torch (3 s here), so
    a bad value in any job is refused in about a second."""
    from hydra import compose
    from omegaconf import OmegaConf, open_dict

    from unlearn.before_run import check_settings_before_run, refused_as_settings
    from unlearn.settings import SettingsError, builds_collected

    if OmegaConf.select(config, "hydra.job.config_name") is None:  # not a Hydra run's config (a test's)
        return
    jobs = sweep_jobs(config)
    # the config search path the run was given (a method of one's own, docs/guide/adding_a_method.md): until
    # 2026-12-06 left out, so every job of such a sweep failed to compose and the check was skipped with a warning
    searchpath = [o for o in OmegaConf.select(config, "hydra.overrides.hydra", default=[]) or []
                  if str(o).split("=", 1)[0].lstrip("+") == "hydra.searchpath"]
    template = str(OmegaConf.to_container(config.hydra, resolve=False)["sweep"]["subdir"])
    subdirs: dict[str, int] = {}  # each job's hydra.sweep.subdir, where it can be read here
    builds = []  # (job number, its config, its optimiser and scheduler builds)
    for num, overrides in enumerate(jobs):
        # an interpolated override (`seed=${hydra:job.num}`, `${oc.env:X}`; the sweeper writes it escaped, `$\{`)
        # reads the job's own number or environment, not this process's: that job is checked as it starts
        if any(re.search(r"\$\\?\{", o.split("=", 1)[-1]) for o in overrides):
            continue
        cfg = compose(config_name=config.hydra.job.config_name, overrides=[*searchpath, *overrides])
        with open_dict(cfg):
            cfg.paths.output_dir = str(Path(config.hydra.sweep.dir) / f"job{num}")
            cfg.paths.cache_dir = str(config.paths.cache_dir)
        try:
            with builds_collected() as job_builds:
                check_settings_before_run(cfg, here=False)
        except SettingsError as e:
            raise refused_job(num, jobs, e) from e
        builds.append((num, cfg, job_builds))
        subdir = job_subdir(template, cfg, num, str(config.hydra.job.name))
        if subdir is not None and subdirs.setdefault(subdir, num) != num:
            # until 2026-12-06 found only when the later job started, after the earlier one ran (hours at 7B)
            raise SystemExit(f"Error: jobs {subdirs[subdir]} and {num} of {len(jobs)} would write into "
                             f"{Path(config.hydra.sweep.dir) / subdir}: hydra.sweep.subdir={template} must differ "
                             "between jobs (keep ${hydra.job.num} in it, as configs/config.yaml's does); no job has run")
    for num, cfg, job_builds in builds:
        try:
            with refused_as_settings(cfg):
                for build in job_builds:
                    build()
        except SettingsError as e:
            raise refused_job(num, jobs, e) from e


def refused_job(num: int, jobs: list, error: Exception) -> SystemExit:
    return SystemExit(f"Error: job {num} of {len(jobs)} ({' '.join(jobs[num])}): {error}; no job has run")


def job_subdir(template: str, cfg, num: int, name: str) -> str | None:
    """A job's hydra.sweep.subdir from its composed config and number; None where it reads what only Hydra's job
    knows (${hydra:...}, override_dirname, ...) or cannot be resolved here, and where it holds the job's number
    (every job's differs)."""
    from omegaconf import OmegaConf

    if "hydra.job.num" in template or "${hydra:" in template or "override_dirname" in template:
        return None
    node = OmegaConf.create({**OmegaConf.to_container(cfg, resolve=False),
                             "hydra": {"job": {"num": num, "name": name}, "sweep": {"subdir": template}}})
    try:
        return str(node.hydra.sweep.subdir)
    except Exception:  # noqa: BLE001 - a key the job's Hydra fills in: left to the job (on_job_start)
        return None


def _refuse_finished_sweep(sweep, key: str = "hydra.sweep.dir") -> None:
    sweep = Path(sweep)
    done = sorted({p.parent for name in FINISHED for p in sweep.rglob(name)}) if sweep.is_dir() else []
    if done:
        shown = ", ".join(str(p) for p in done[:3]) + (f" and {len(done) - 3} more" if len(done) > 3 else "")
        raise SystemExit(f"Error: hydra.sweep.dir={sweep} already holds finished runs ({shown}); nothing was "
                         "written: choose another hydra.sweep.dir")
