"""What a taught model's floats came from, beyond its config: the float environment of the process.

Why: on CPU the same recipe and seed give different weights under another processor's kernels, another
torch thread count or another library version (docs/frontier_evidence.md: one and two threads gave two
different seed-0 models on one machine, 2 of 64 tensors equal). The cache key names what the user chose;
this record names where the floats were made, so a reader can tell whether two results pages compare one
sample of taught models or two.
"""

from __future__ import annotations

import functools
import hashlib
import platform
from importlib import metadata
from pathlib import Path

import torch

LIBRARIES = ("torch", "transformers", "lightning", "peft")
TEACHING_FILE = "teaching.json"  # beside a cached vanilla model's weights


def cpu_model() -> str | None:
    """The processor's name from /proc/cpuinfo (platform.processor() is empty on most Linux systems)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def library_versions() -> dict[str, str | None]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def float_environment(accelerator: str = "cpu") -> dict:
    """The settings of this process that move a model's floats, for the record (not for a cache key: the
    processor and the libraries are the machine's, and a cache lives on one machine)."""
    env = {"python": platform.python_version(), "libraries": library_versions(), "cpu": cpu_model(),
           "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch_threads": torch.get_num_threads(),
           "accelerator": accelerator}
    if accelerator != "cpu" and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        env["world_size"] = torch.distributed.get_world_size()
    return env


def code_version(root: Path | None = None) -> dict | None:
    """This framework's git commit, and whether its tracked files differ from it ("dirty"), for metrics.json: two
    runs made by different code read alike otherwise (a reviewer could not tell a run of last month's code from
    today's). None outside a git checkout (an installed copy) or without git."""
    import subprocess

    root = root or Path(__file__).resolve().parents[1]

    def git_bytes(*args: str) -> bytes | None:
        # --no-optional-locks: `git status` otherwise refreshes .git/index under .git/index.lock, and a git killed
        # meanwhile (this timeout's SIGKILL, a SIGTERM to a run's process group) left the lock behind: the user's
        # next git command failed ("Unable to create '.git/index.lock': File exists", after a test run, 2026-12-07)
        try:
            done = subprocess.run(["git", "--no-optional-locks", "-C", str(root), *args], capture_output=True,
                                  timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    def git(*args: str) -> str | None:
        out = git_bytes(*args)
        return None if out is None else out.decode("utf-8", "replace")

    top = git("rev-parse", "--show-toplevel")  # an installed copy inside a user's own repository is not a checkout
    if top is None or Path(top).resolve() != root.resolve():
        return None
    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    out = {"commit": commit, "dirty": None if status is None else bool(status)}
    # bytes, not text: an edited tracked file that is not UTF-8 raised UnicodeDecodeError here, at the run's end,
    # before metrics.json; and the patch as git writes it by default whatever the user's diff settings (an external
    # diff tool, textconv, colour would change or replace it)
    if status:  # which edits: two runs of one commit edited differently read as one code otherwise (until 2026-12-06)
        diff = git_bytes("diff", "HEAD", "--binary", "--no-ext-diff", "--no-textconv", "--no-color")
        if diff is not None:
            out["edits"] = hashlib.sha256(diff).hexdigest()[:8]
    tracked = git_bytes("ls-files", "-z")
    if tracked is not None:
        out["digest"] = code_digest(root, [p for p in tracked.decode("utf-8", "replace").split("\0") if p])
    return out


# what a run does not execute: two commits that differ only here made their runs with the same code
NOT_RUN = ("docs", "tests", "*.md")


def executed(path: str) -> bool:
    import fnmatch

    return not any(path == p or path.startswith(p + "/") or fnmatch.fnmatch(path, p) for p in NOT_RUN)


def code_digest(root: Path, tracked: list[str]) -> str:
    """A hash of the code a run executes: the tracked files outside NOT_RUN, as they are on disk (committed or
    not). Why: the report says when its runs were made by different code, and a commit that changed the README
    alone, between seed 1 and seed 2, read as other code (until the fifty-first session); an edit committed after
    a run is the same code as that run's. A tracked file deleted from the disk counts as missing."""
    h = hashlib.sha256()
    for path in sorted(p for p in tracked if executed(p)):
        file = root / path
        h.update(path.encode() + b"\0" + (hashlib.sha256(file.read_bytes()).digest() if file.is_file() else b"-"))
    return h.hexdigest()[:8]


@functools.cache
def running_code() -> dict | None:
    """code_version of this framework, read once a process: the code a process runs is what it imported at its
    start, and a sweep in one process (the frontier's workers, `train.py -m`) would ask git again for every run."""
    return code_version()


# what the vanilla key cannot name (the threads and the trainer it does): the machine and its libraries
MACHINE_KEYS = ("python", "libraries", "cpu", "cpu_capability", "gpu")


def machine_part(env: dict) -> dict:
    return {k: env[k] for k in MACHINE_KEYS if k in env}


def differences(recorded: dict, current: dict) -> list[str]:
    """The float-environment entries in which `current` differs from `recorded`, as 'key: old -> new'."""
    out = []
    for key in sorted(set(recorded) | set(current)):
        old, new = recorded.get(key), current.get(key)
        if isinstance(old, dict) or isinstance(new, dict):
            out += [f"{key}.{d}" for d in differences(old or {}, new or {})]
        elif old != new:
            out.append(f"{key}: {old} -> {new}")
    return out
