# mqtt-kafka-sync: every set-up step the README promises goes through these targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help bootstrap tools manifests demo test lint typecheck imports unit integration stack-up stack-down stack-status docs clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	./scripts/install-system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

bootstrap: $(STAMP)  ## install system packages (Mosquitto, JDK, Maven) and the Python environment

tools:  ## build Helm 4 from the Go module proxy into .stack/tools (once; the chart's tests use it)
	./scripts/install-helm.sh

manifests: $(STAMP) tools  ## rewrite compose/kubernetes/ (plain manifests) from the Helm chart
	$(PY) -m tests.unit.deploy.chart

demo: $(STAMP)  ## start the local stack, a worker and a device simulator; live progress until Ctrl-C
	$(BIN)/mqtt-kafka-sync demo $(DEMO_ARGS)

test: $(STAMP)  ## everything CI runs: lint, type check, unit and integration tests against real brokers
	./scripts/install-helm.sh --background
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -ra

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: $(STAMP)  ## mypy --strict on the package, the tests and the load tests
	$(BIN)/mypy

imports: $(STAMP)  ## the house plan: import-linter contracts (pyproject.toml, docs/architecture.md)
	$(BIN)/lint-imports

unit: $(STAMP)  ## fast tests, no brokers
	$(BIN)/pytest -ra tests/unit

integration: $(STAMP)  ## tests against real Kafka and Mosquitto (started locally unless given by env)
	$(BIN)/pytest -ra tests/integration

stack-up: $(STAMP)  ## start the local Kafka + Mosquitto in the background
	$(BIN)/mqtt-kafka-sync stack up

stack-down: $(STAMP)  ## stop the local stack
	$(BIN)/mqtt-kafka-sync stack down

stack-status: $(STAMP)  ## show whether the local stack runs
	$(BIN)/mqtt-kafka-sync stack status

docs: $(STAMP)  ## regenerate the config reference from the config spec
	$(PY) -m mqtt_kafka_sync.config.reference > docs/config-reference.md

clean:  ## remove the virtualenv and the local stack's data (stops nothing: run stack-down first)
	rm -rf $(VENV) .stack .pytest_cache .mypy_cache .ruff_cache
