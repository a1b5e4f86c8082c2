# memcontract: `make demo` and `make test` set everything up themselves (venv, Go tools).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest proto venv clean browser

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

pytest: $(STAMP) browser
	$(BIN)/pytest -q

# Headless Chromium (Debian's package) for the test that renders the demo's page: installed
# where missing and possible (root with apt-get); otherwise that test says why it skips.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; } || \
	  echo "make browser: Chromium not installed (needs root and apt-get)"

proto: $(STAMP)
	$(BIN)/python tools/genproto.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
include go.mk
