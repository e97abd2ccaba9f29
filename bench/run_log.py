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

    def append(self, record: dict) -> None:
        with self.path.open("a+b") as f:  # appends go to the end; the file is read only after an interrupted one
            size = f.seek(0, os.SEEK_END)
            if size:
                f.seek(size - 1)
                if f.read(1) != b"\n":  # drop what it left, keep the rest
                    f.seek(0)
                    f.truncate(f.read().rfind(b"\n") + 1)
            f.write((json.dumps(record) + "\n").encode())
