"""bench/cached_run.py's comparison with another commit: the ratio is of the medians, this checkout's over the
other's, per command (a slow spell of the shared machine hits both, so the ratio says whether the code moved)."""

import subprocess
import sys
from pathlib import Path

from bench.cached_run import against_rows, checkout_of

ROOT = Path(__file__).resolve().parents[1]


def test_the_ratio_is_of_the_medians_ours_over_theirs():
    times = {"ours wandb": [9.0, 30.0, 10.0], "ours none": [8.0, 8.0, 8.0],
             "theirs wandb": [5.0, 5.0, 100.0], "theirs none": [16.0, 4.0, 10.0]}
    rows = against_rows("abc1234", times, ("ours wandb", "ours none"), ("theirs wandb", "theirs none"))
    assert rows == [("  ratio, this checkout / abc1234 (W&B offline)", " 2.000"),
                    ("  ratio, this checkout / abc1234 (logger=none)", " 0.800")]


def test_the_other_commit_is_a_worktree_removed_after(tmp_path):
    where = tmp_path / "against"
    with checkout_of("HEAD", where) as root:
        assert (root / "train.py").is_file()
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
    assert not where.exists()
    listed = subprocess.run(["git", "worktree", "list"], capture_output=True, text=True, check=True,
                            cwd=ROOT).stdout
    assert str(where) not in listed
    assert len(head.stdout.strip()) == 40


def test_against_refuses_phases_only():
    done = subprocess.run([sys.executable, "-m", "bench.cached_run", "--against", "HEAD", "--phases-only"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and "--against" in done.stderr
