# Every target works on a fresh clone: `install` creates/refreshes .venv from pyproject.toml.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
ARGS ?=

.PHONY: install train test test-slow lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

train: install  ## train the default model on digits (override with ARGS="model=lenet5 ...")
	$(VENV)/bin/nnopt-train $(ARGS)

test: install  ## fast test tier (< ~10 min on 2 cores)
	$(PY) -m pytest -m "not slow" -q $(ARGS)

test-slow: install  ## slow tests: real data, long runs, kill/resume
	$(PY) -m pytest -m slow -q $(ARGS)

lint: install
	$(VENV)/bin/ruff check src tests scripts

bench: install  ## benchmark tables -> bench/RESULTS.md
	$(PY) scripts/bench.py $(ARGS)

clean:
	rm -rf logs .pytest_cache .ruff_cache
