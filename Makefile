# memcontract: `make demo` and `make test` set everything up themselves (venv, Go tools).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest proto venv clean drills

# The example server driven into level 3 and back, live (examples/python/demo.py); ~40 s.
# DEMO_ARGS=--short: a 10 s load (what CI runs); --out NAME: where the reports go.
DEMO_ARGS ?=
demo: $(STAMP)
	$(BIN)/python -m examples.python.demo $(DEMO_ARGS)

test: lint typecheck gotest pytest

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/memcontract lint examples

typecheck: $(STAMP)
	$(BIN)/mypy src/memcontract interceptors

pytest: $(STAMP)
	$(BIN)/pytest -q

# Fault drills and soaks (about 12 min): the tests marked `drill` (deselected by `make test`),
# then the gateway's 10-minute soak (bench/gateway_soak.py; its exit status is its verdict).
drills: $(STAMP) gateway ghz
	$(BIN)/pytest -q -m drill
	$(BIN)/python bench/gateway_soak.py

proto: $(STAMP)
	$(BIN)/python tools/genproto.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
include go.mk
