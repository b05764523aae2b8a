# Every target creates .venv on first use and reuses it afterwards.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch from this machine's local wheels; override on other machines, e.g. TORCH_SPEC=torch
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=
# reproduce-tables: smoke (every row, tiny, CPU, minutes) | cpu (ListOps rows, ~40 min) | paper (SLURM)
SCALE ?= smoke
RUNS_DIR ?= results/runs

.DEFAULT_GOAL := help
.PHONY: help setup lint test test-slow test-cuda test-all reproduce-tables tables demo

help: ## show this list
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q $(TORCH_SPEC)
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) ## create .venv with the package and its dev tools

lint: $(STAMP) ## ruff over the code and tests
	$(VENV)/bin/ruff check .

test: lint ## lint, then the fast test suite (what CI runs)
	$(PY) -m pytest -m "not slow" -q $(PYTEST_ARGS)

test-slow: $(STAMP) ## only the slow tests
	$(PY) -m pytest -m slow -q $(PYTEST_ARGS)

test-cuda: $(STAMP) ## only the CUDA tests (needs a GPU)
	$(PY) -m pytest -m cuda -q $(PYTEST_ARGS)

test-all: lint ## every test, slow and CUDA included
	$(PY) -m pytest -q $(PYTEST_ARGS)

demo: $(STAMP) ## ListOps at a CPU-friendly size, race vs softmax: test acc vs majority class, s/step, memory
	$(PY) experiments/demo.py

reproduce-tables: $(STAMP) ## train the paper tables' rows at SCALE=smoke|cpu|paper (resumes), then make tables
	$(PY) experiments/reproduce.py --scale $(SCALE) --runs-root $(RUNS_DIR); status=$$?; \
	$(MAKE) --no-print-directory tables; exit $$status

tables: $(STAMP) ## results/tables/*.md and results/figures/*.png from every metrics.json under RUNS_DIR
	$(PY) experiments/tables.py --runs-root $(RUNS_DIR)

# scaling study: BENCH_ARGS passes options, e.g. BENCH_ARGS="--methods race softmax --max-n 65536"
BENCH_ARGS ?=
.PHONY: scaling scaling-gpu

scaling: $(STAMP) ## one-layer scaling study on the CPU (fp32): results/scaling/cpu-<date>.{csv,png,md}
	$(PY) -m race.bench run --device cpu $(BENCH_ARGS)

scaling-gpu: $(STAMP) ## the same on CUDA under bf16 autocast: results/scaling/cuda-<date>.{csv,png,md}
	$(PY) -m race.bench run --device cuda $(BENCH_ARGS)
