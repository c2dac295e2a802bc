# Interactive Storybook: `make run` starts everything, `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: run test lint bench clean help

help:
	@echo "make run    start gateway, workers (and offline fakes when no API keys are set)"
	@echo "make test   run the whole test suite (needs RabbitMQ; PostgreSQL for the store tests)"
	@echo "make lint   ruff + mypy"

$(VENV)/.python-ok:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
	  { echo "Python 3.11 or newer is needed (found: $$($(PYTHON) --version 2>&1)). Install it, or run 'make PYTHON=python3.11 ...'."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@touch $@

$(VENV)/.installed: $(VENV)/.python-ok pyproject.toml
	$(PY) -m pip install -q -e .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[dev]"
	@touch $@

run: $(VENV)/.installed
	$(PY) -m services.devstack

# axe-core for the browser tests' accessibility checks (package.json, pinned in package-lock.json).
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

test: $(VENV)/.installed-dev node_modules/.installed
	$(PY) -m pytest

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check services tests
	$(VENV)/bin/mypy

# Latency against the floor, the sequential baseline, memory per reader and scaling;
# prints a table and writes bench-results/<timestamp>.json. E.g. BENCH_ARGS=--quick
bench: $(VENV)/.installed-dev
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) node_modules var test-artifacts .pytest_cache .mypy_cache .ruff_cache
