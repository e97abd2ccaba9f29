"""`make test` runs the suite on pytest-xdist workers, one per core: each runs torch on its share of the cores, and
so do the runs its tests launch (a vanilla model's cache key holds the thread count, so a test that reads a model
a launched run taught must see the same count)."""

import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import threads_per_worker


@pytest.mark.parametrize(("cores", "workers", "threads"), [(2, 2, 1), (16, 2, 8), (16, 3, 5), (2, 4, 1), (4, 1, 4),
                                                          (4, 0, 4)])
def test_the_cores_are_split_between_the_workers(cores, workers, threads):
    assert threads_per_worker(cores, workers) == threads


def test_a_worker_and_the_runs_it_launches_use_its_share_of_the_cores():
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not workers:
        pytest.skip("a pytest-xdist worker's setting (`make test`, `pytest -n 2`)")
    share = threads_per_worker(len(os.sched_getaffinity(0)), int(workers))
    launched = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                              capture_output=True, text=True, check=True)
    assert (torch.get_num_threads(), int(launched.stdout)) == (share, share)
