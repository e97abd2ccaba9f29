# Two commands on a fresh machine: `make run` (main job on the embedded default) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=
PYTEST_ARGS ?=
TEST_WORKERS ?= auto

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $@

.PHONY: setup run test bench
setup: $(VENV)/.installed

run: setup
	$(PY) train.py $(ARGS)

# One pytest-xdist worker per core, a test module's tests on one worker (they share its fixtures and launches),
# modules in file order (the slow multi-process ones, test_cli and test_ddp*, start first: xdist's default order,
# most tests first, left them to the end, one worker running them while the other idled);
# TEST_WORKERS=0 runs them in this process.
test: setup
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder $(PYTEST_ARGS)

bench: setup
	$(PY) -m bench.manu_pass
	$(PY) -m bench.run_times
