"""tests/conftest.py's `_environment_restored`: what one test sets in os.environ does not reach the next (both run
in one worker, in file order, under `-n 2 --dist loadscope` too)."""

import os


def test_a_test_sets_what_a_run_sets():
    import lightning as L

    L.seed_everything(123)  # sets PL_GLOBAL_SEED, as every run's seeding does
    os.environ["UNLEARN_RANK0_DECIDED_ISOLATION_CHECK"] = "1"
    assert os.environ["PL_GLOBAL_SEED"] == "123"


def test_the_next_test_does_not_see_it():
    assert "UNLEARN_RANK0_DECIDED_ISOLATION_CHECK" not in os.environ
    assert os.environ.get("PL_GLOBAL_SEED") != "123"
