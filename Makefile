# The few verbs people expect. Each target sets up the virtual environment first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: setup run test test-unit lint proto proto-check buf fmt bench bench-smoke clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP)

run: setup  ## embedded PostgreSQL (unless DATABASE_URL is set) + migrations + both services
	$(PY) scripts/run_dev.py

test: setup  ## the full test suite on a real PostgreSQL
	$(PY) -m pytest

test-unit: setup  ## the fast tier: use cases on an in-memory store, no PostgreSQL, no gRPC
	$(PY) -m pytest tests/unit -q

lint: setup proto-check buf  ## ruff, mypy, stub drift and buf lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

proto: setup  ## regenerate stubs from protos/
	$(PY) scripts/gen_protos.py

proto-check: setup
	$(PY) scripts/gen_protos.py --check

buf:  ## lint the contracts with buf's standard rules
	test -x node_modules/.bin/buf || npm ci --no-audit --no-fund --silent
	node_modules/.bin/buf lint

$(VENV)/.bench-$(shell cksum < pyproject.toml | cut -d' ' -f1): $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,bench]'
	rm -f $(VENV)/.bench-* && touch $@

bench: $(VENV)/.bench-$(shell cksum < pyproject.toml | cut -d' ' -f1)  ## benchmark suite (~7 min) -> bench/results/
	$(PY) -m bench

bench-smoke: setup  ## a few seconds of every benchmark workload (the tests run it too)
	$(PY) -m bench --smoke

fmt: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .data node_modules
