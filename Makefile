# Every target works on a fresh clone: `install` creates/refreshes .venv from pyproject.toml.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
ARGS ?=

.PHONY: help install train test test-slow test-cluster lint format bench clean
# plain `make` lists the targets; `make train` and `make test` are the two everyday ones
.DEFAULT_GOAL := help

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)  ## create/refresh .venv: nnopt editable with every extra (.[all,dev]), torch pinned by constraints.txt

train: install  ## train the default model on digits (override with ARGS="model=lenet5 ...")
	$(VENV)/bin/nnopt-train $(ARGS)

test: install  ## fast test tier: two pytest-xdist workers, one test file per worker at a time (see tests/conftest.py)
	$(PY) -m pytest -m "not slow and not cluster" -q -n 2 --dist loadgroup $(ARGS)

test-cluster: install  ## real SLURM cluster (2 nodes in netns) + PostgreSQL started by the tests (root; ~8 min)
	$(PY) -m pytest -m cluster -q tests/cluster $(ARGS)

test-slow: install  ## slow tests: real data, signals, disk full, wheel, DDP nodes, bench smoke
	$(PY) -m pytest -m slow -q $(ARGS)

lint: install  ## ruff: lint and check formatting (changes nothing)
	$(VENV)/bin/ruff check src tests scripts
	$(VENV)/bin/ruff format --check src tests scripts

format: install  ## ruff: apply the safe lint fixes and format src, tests, scripts in place
	$(VENV)/bin/ruff check --fix src tests scripts
	$(VENV)/bin/ruff format src tests scripts

bench: install  ## benchmark tables -> bench/RESULTS.md
	$(PY) scripts/bench.py $(ARGS)

clean:  ## remove logs and tool caches
	rm -rf logs .pytest_cache .ruff_cache

help:  ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
