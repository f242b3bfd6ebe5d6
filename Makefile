# neuroflow — `make help` lists the targets.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Stages call `neuroflow`; DVC and Prefect run them with the venv first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)
STAMP := $(VENV)/.installed
PRESET ?=
ARGS ?= # extra `dvc exp show` flags for `make compare`
PYTEST_ARGS ?=
# Many tests wait on subprocesses and servers, so more workers than cores keep both busy; past
# three on two cores the contention costs more than the overlap gains (whole suite: 465 s with
# three workers, 552 s with four). Tiny models train fastest on one thread, and one thread per
# process avoids oversubscribing the cores.
TEST_WORKERS ?= 3
# Whole files, in collection order (tests/conftest.py puts the slow files first): xdist's default
# reorder would start the many-test unit files first and leave the single long end-to-end tests
# for the end, one worker running alone. (--dist loadgroup would split files by test: with
# pytest 9 xdist 3.8 cannot tag the test ids with their group.)
TEST_DIST := --dist loadfile --no-loadscope-reorder
TEST_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

.DEFAULT_GOAL := help

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

venv: $(STAMP) ## Create .venv and install the pinned set (requirements.lock)

run: $(STAMP) ## Run the pipeline with dvc repro (PRESET=name runs presets/name.yaml as an experiment)
ifeq ($(PRESET),)
	$(BIN)/dvc repro
	$(BIN)/neuroflow show-metrics
else
	$(BIN)/neuroflow run-preset $(PRESET)
endif

test: $(STAMP) ## Run the whole test suite (unit, stage, end-to-end; slow included)
	$(TEST_ENV) $(BIN)/python -m pytest -n $(TEST_WORKERS) $(TEST_DIST) $(PYTEST_ARGS)

test-fast: $(STAMP) ## Run the tests not marked slow
	$(TEST_ENV) $(BIN)/python -m pytest -n $(TEST_WORKERS) $(TEST_DIST) -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP) ## ruff + mypy
	$(BIN)/ruff check src tests pipelines benchmarks
	$(BIN)/ruff format --check src tests pipelines benchmarks
	$(BIN)/mypy

format: $(STAMP) ## Apply ruff formatting and safe fixes
	$(BIN)/ruff check --fix src tests pipelines benchmarks
	$(BIN)/ruff format src tests pipelines benchmarks

compare: $(STAMP) ## Experiments side by side: changed params, test metrics (ARGS=-A: every branch)
	neuroflow compare -- $(ARGS)

# MLflow's server also starts a job runner and eight Python workers for its GenAI jobs, which
# neuroflow never submits (about 30 CPU-s at every start); MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true
# in the environment turns them back on.
# One user's browser: one server process (mlflow ui's default of 4 imports MLflow four times).
UI_WORKERS ?= 1
ui: $(STAMP) ## Open the MLflow UI on 127.0.0.1:5000 over the project store (UI_WORKERS=1)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=$${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false} \
	$(BIN)/mlflow ui --host 127.0.0.1 --port 5000 --workers $(UI_WORKERS) \
		--backend-store-uri $${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db}

bench: $(STAMP) ## Run the benchmarks and write benchmarks/results + RESULTS.md
	$(BIN)/python -m benchmarks.run

lock: ## Re-resolve the dependency set into requirements.lock (needs the package index)
	rm -rf .lock-venv && $(PY) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade "pip>=24"
	.lock-venv/bin/python -m pip install --quiet ".[dev]" "torch==2.13.0"
	{ sed -n '1,2p' requirements.lock; .lock-venv/bin/python -m pip freeze --all --exclude-editable \
	  | grep -v -E '^(pip|neuroflow)==' | sed 's/^torch==2.13.0+cpu/torch==2.13.0/' \
	  | sort -f; } > requirements.lock.new && mv requirements.lock.new requirements.lock
	rm -rf .lock-venv

bench-smoke: $(STAMP) ## Tiny run of every benchmark into a temp dir (what CI checks)
	$(BIN)/python -m benchmarks.run --smoke

clean: ## Remove pipeline outputs in artifacts/ that git ignores (keeps tracked metrics, .venv, the DVC cache, mlflow.db)
	git clean -fdX -- artifacts

.PHONY: help venv run test test-fast lint format compare ui bench bench-smoke lock clean
