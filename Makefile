# `make demo` runs the main job (the default zoo, then the default sweep), `make test` the test suite; both set up .venv first.
# TORCH: the torch requirement installed before the project. The default takes the
# CPU build; on a GPU machine use e.g. `make demo TORCH=torch` (your CUDA build).
PY ?= python3
TORCH ?= torch==2.13.0
BIN := .venv/bin

$(BIN)/wsl: pyproject.toml
	$(PY) -m venv .venv
	$(BIN)/pip install -q --disable-pip-version-check "$(TORCH)"
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev,cluster]'
	$(BIN)/pip install -q --disable-pip-version-check --no-deps "syne-tune==0.16.0"
	touch $@

.PHONY: demo test lint
# Each demo is a new sweep (a name that exists already needs --resume); the zoo is built once.
# The name is fixed once (:=): the sweep and the front read the same sweep.
ifndef DEMO
DEMO := demo-$(shell date +%Y%m%d-%H%M%S)
endif
demo: $(BIN)/wsl
	$(BIN)/wsl zoo make
	$(BIN)/wsl sweep name=$(DEMO)
	$(BIN)/wsl results $(DEMO) --pareto

test: $(BIN)/wsl
	$(BIN)/pytest

lint: $(BIN)/wsl
	$(BIN)/ruff format --check . && $(BIN)/ruff check .
