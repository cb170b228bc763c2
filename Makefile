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
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .

format: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .mlplug
