"""Run a bench module in a child process and read the JSON line it prints last.

Why: the benches that compare settings read by a library only when it loads (kernel variables) or that need a
clean peak of GPU memory (one setting each) run each case as `python -m bench.X --child ...`; this is the one way
they start it and read its result, from the repository root whatever the caller's working directory.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_json_child(module: str, args: list[str], env: dict | None = None) -> tuple[dict | None, subprocess.CompletedProcess]:
    """(the last line of stdout that starts with "{", parsed; None when the child failed or printed none), the
    finished process (its stdout and stderr, for what else it printed)."""
    done = subprocess.run([sys.executable, "-m", module, *args], env=env, cwd=ROOT, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return (json.loads(lines[-1]) if lines and not done.returncode else None), done
