# taxifare: `make run` and `make test` are all a fresh machine needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PIPELINE_OUT ?= pipeline.yaml
IMAGE ?=
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,tensorboard]'
	@touch $@

install: $(STAMP) ## create .venv and install the project (only when pyproject.toml changed)

run: $(STAMP) ## run the whole pipeline locally on generated sample data
	$(BIN)/taxifare run $(RUN_ARGS)

test: $(STAMP) lint ## lint, type-check and run the test suite (the image build is `make image-test`)
	$(BIN)/python -m pytest -m "not image" $(PYTEST_ARGS)

lint: $(STAMP) ## ruff, mypy and hadolint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile

format: $(STAMP) ## apply ruff's formatting and fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

compile: $(STAMP) ## compile the pipelines to $(PIPELINE_OUT) (training) and pipeline-batch.yaml
	$(BIN)/taxifare compile --out $(PIPELINE_OUT)
	$(BIN)/taxifare compile --pipeline batch --out pipeline-batch.yaml

.PHONY: help install run test lint format compile

include make/image.mk
include make/bench.mk
