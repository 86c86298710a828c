# MMGT — every target creates .venv if missing and installs -e .[dev] when pyproject.toml changed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: help demo test test-fast bench lint format clean install

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the project (skipped when up to date)

demo: $(STAMP) ## the main job on the embedded default (toy speakers)
	$(PY) -m mmgt.demo

test: $(STAMP) ## the full test suite (what CI runs)
	$(PY) -m pytest -q --durations=15 || { rc=$$?; [ $$rc -eq 5 ] && echo "no tests collected" || exit $$rc; }

test-fast: $(STAMP) ## the fast tier for the inner loop (< 3 min)
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP) ## benchmark scripts (print ratios against baselines)
	@set -e; for b in $$(ls tests/benchmarks/bench_*.py 2>/dev/null); do echo "== $$b"; $(PY) $$b; done

lint: $(STAMP) ## ruff check + format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP) ## ruff fix + format
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean: ## remove outputs and caches (keeps .venv)
	rm -rf outputs .pytest_cache .ruff_cache
