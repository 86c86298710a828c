# MMGT — every target creates .venv if missing and installs -e .[dev] when pyproject.toml changed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: help demo test test-fast bench bench-gpu lint format clean install

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

bench: $(STAMP) ## benchmark scripts (print ratios against baselines; CPU, without bench_gpu.py)
	@set -e; for b in $$(ls tests/benchmarks/bench_*.py 2>/dev/null | grep -v bench_gpu.py); do echo "== $$b"; $(PY) $$b; done

# The GPU path on a CUDA machine without a package index (docs/stage2.md "Measured on a GPU"): no venv, the machine's python3;
# the wheels of tests/benchmarks/gpu_wheels.sh (.whl/) it lacks go to GPU_SITE with the repository's three
# packages linked beside them (mmgt, mmgt.conf, mmgt_prep, mmgt_eval: the package-dir map of pyproject.toml).
GPU_SITE ?= /tmp/mmgt_gpu_site
BENCH_GPU_OUT ?= outputs/bench/gpu
bench-gpu: ## the GPU path, measured (bench_gpu.py --out $(BENCH_GPU_OUT); BENCH_GPU_ARGS=...)
	@set -e; rm -rf $(GPU_SITE); mkdir -p $(GPU_SITE)/mmgt; \
	if [ -d .whl ]; then \
	  need=$$(for w in .whl/*.whl; do d=$$(basename $$w | cut -d- -f1); \
	    $(PYTHON) -c "import importlib.metadata as m, sys; m.distribution(sys.argv[1])" $$d 2>/dev/null || echo $$w; done); \
	  if [ -n "$$need" ]; then echo "installing into $(GPU_SITE):" $$need; \
	    $(PYTHON) -m pip install -q --no-index --no-deps --target $(GPU_SITE) $$need; fi; fi; \
	ln -s $(CURDIR)/src/mmgt/* $(GPU_SITE)/mmgt/; ln -s $(CURDIR)/conf $(GPU_SITE)/mmgt/conf; \
	ln -s $(CURDIR)/data_prep $(GPU_SITE)/mmgt_prep; ln -s $(CURDIR)/eval $(GPU_SITE)/mmgt_eval; \
	PYTHONPATH=$(GPU_SITE):$(CURDIR) $(PYTHON) tests/benchmarks/bench_gpu.py --out $(BENCH_GPU_OUT) $(BENCH_GPU_ARGS)

lint: $(STAMP) ## ruff check + format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP) ## ruff fix + format
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean: ## remove outputs and caches (keeps .venv)
	rm -rf outputs .pytest_cache .ruff_cache
