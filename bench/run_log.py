"""A sweep's `runs.jsonl`: one JSON line per finished run, so a stopped sweep resumes where it stopped.

Why one module: three benches kept their own copy of the read-append loop. A run killed while writing its line
leaves a last line without its newline; that run is read as not done (it reruns), while a bad line anywhere
else is an error that names the file and line, since something other than an interrupted append wrote it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from unlearn.run_dir import finished_outputs

log = logging.getLogger(__name__)


def quiet_sweep() -> None:
    """What every sweep bench sets first: no W&B runs (unless the caller's environment asks), warnings only."""
    os.environ.setdefault("WANDB_MODE", "disabled")
    logging.basicConfig(level=logging.WARNING)


class RunLog:
    def __init__(self, out: Path):
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / "runs.jsonl"

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        text = self.path.read_text()
        lines = text.split("\n")
        records = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                if number == len(lines) and not text.endswith("\n"):  # an append cut short: that run reruns
                    log.warning("%s:%d: an unfinished last line is ignored (its run will run again)", self.path,
                                number)
                    continue
                raise ValueError(f"{self.path}:{number}: not a JSON record ({err.msg}); move the file away to "
                                 "start the sweep afresh") from err
        return records

    @staticmethod
    def run_dir(path: Path) -> Path:
        """`path`, or, when a run finished there but never reached this log (the tool stopped in between), the
        first `path-2`, `path-3`, ... that holds no finished run: that run's outputs are kept and the sweep goes
        on, where the run itself would refuse the directory (unlearn/run_dir.py)."""
        candidate, n = path, 1
        while finished_outputs(candidate):
            n += 1
            candidate = path.with_name(f"{path.name}-{n}")
        if candidate != path:
            log.warning("%s holds a finished run this sweep's log does not list (kept as it is); this run goes to %s",
                        path, candidate)
        return candidate

    def append(self, record: dict) -> None:
        with self.path.open("a+b") as f:  # appends go to the end; the file is read only after an interrupted one
            size = f.seek(0, os.SEEK_END)
            if size:
                f.seek(size - 1)
                if f.read(1) != b"\n":  # drop what it left, keep the rest
                    f.seek(0)
                    f.truncate(f.read().rfind(b"\n") + 1)
            f.write((json.dumps(record) + "\n").encode())
