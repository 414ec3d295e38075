# Kaizen: the two commands that must always work on a fresh machine are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup run test test-all lint format bench compile clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install the project with its dev tools

run: setup ## run the training pipeline locally on the embedded defaults
	$(BIN)/kaizen run

test: setup lint ## lint, type-check and run the test suite (slow suites excluded)
	$(BIN)/python -m pytest -m "not slow" -q

test-all: setup lint ## everything, including the slow suites
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup ## performance figures, each beside its baseline
	$(BIN)/python benchmarks/data.py
	$(BIN)/python benchmarks/features.py
	$(BIN)/python benchmarks/pipeline_overhead.py
	$(BIN)/python benchmarks/tuning.py
	$(BIN)/python benchmarks/serving.py

compile: setup ## regenerate the committed pipeline YAML
	$(BIN)/kaizen compile

clean:
	rm -rf .kaizen .pytest_cache .mypy_cache .ruff_cache
