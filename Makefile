# The two commands a new user types: `make demo` and `make test`. Both build the venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip

# Embedded defaults: state (store, Prefect, Ray scratch) stays inside the checkout.
export MLPLUG_HOME ?= $(CURDIR)/.mlplug
# Offline switches: no hub downloads, no telemetry.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export WHYLOGS_NO_ANALYTICS := True
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export RAY_USAGE_STATS_ENABLED := 0
export DO_NOT_TRACK := 1

PLUGINS := $(wildcard plugins/*/pyproject.toml)
# Two pytest workers: most of the suite waits on servers and subprocesses, so one process
# leaves a core idle (18 min 52 s in one process, 12 min 19 s in two). Whole modules go to
# one worker (--dist loadscope), so a module's fixtures (a trained store, a server) are built
# once. TEST_WORKERS=0 runs in this process.
TEST_WORKERS ?= 2
# One OpenMP thread per worker: with a thread per core in each of two workers, torch's
# threads spin-wait for a core the other worker holds (the tiny-transformer flow test took
# 98-123 s beside another module, 29 s alone).
TEST_THREADS ?= 1

.PHONY: install demo test lint format clean

$(BIN)/.installed: pyproject.toml constraints.txt $(PLUGINS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -U pip
	$(PIP) install -q -c constraints.txt -e '.[dev,k8s]' $(foreach p,$(PLUGINS),-e $(dir $(p)))
	touch $@

# .mlplug/ in the checkout: make exports it as MLPLUG_HOME, and mlplug commands run anywhere
# inside the checkout find it without make (see MLPLUG_HOME in docs/operations.md).
install: $(BIN)/.installed
	mkdir -p .mlplug

demo: install
	$(BIN)/mlplug demo

test: install lint
	OMP_NUM_THREADS=$(TEST_THREADS) $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope

lint: install
	$(BIN)/ruff check .

format: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .mlplug
