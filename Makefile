# memcontract: `make demo` and `make test` set everything up themselves (venv, Go tools).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest proto venv clean

demo: $(STAMP)
	$(BIN)/memcontract probe --contract examples/contracts/memory_contract.yaml --duration 10

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

proto: $(STAMP)
	$(BIN)/python tools/genproto.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
include go.mk
