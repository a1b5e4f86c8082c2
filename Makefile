# memcontract: `make demo` and `make test` set everything up themselves (venv, Go tools).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test drills lint typecheck pytest proto venv clean browser

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

# mypy checks interceptors/ as memcontract.interceptors (its installed name) through a link
# (pyproject.toml's [tool.mypy] says why); the packages to check are listed there too.
typecheck: $(STAMP)
	@mkdir -p .typecheck/memcontract
	@ln -sfn ../../interceptors .typecheck/memcontract/interceptors
	$(BIN)/mypy

# Drills are deselected here (pyproject.toml's addopts: -m 'not drill').
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

# Long runs, soaks and fault drills, kept out of `make test`'s time budget (CI runs both): the
# tests marked `drill` (e.g. a server in a real memory cgroup, which needs root), then the
# gateway's soak (bench/gateway_soak.py; its exit status is its verdict), 3 minutes here to keep
# CI within its time budget: `make drills SOAK_MINUTES=10` is the issue's full soak.
SOAK_MINUTES ?= 3
drills: $(STAMP) gateway ghz
	$(BIN)/pytest -q -m drill
	$(BIN)/python bench/gateway_soak.py --minutes $(SOAK_MINUTES)

proto: $(STAMP)
	$(BIN)/python tools/genproto.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .typecheck
include go.mk
