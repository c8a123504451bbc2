# `make demo` runs the main job, `make test` the test suite; both set up .venv first.
# TORCH: the torch requirement installed before the project. The default takes the
# CPU build; on a GPU machine use e.g. `make demo TORCH=torch` (your CUDA build).
PY ?= python3
TORCH ?= torch==2.13.0
BIN := .venv/bin

$(BIN)/wsl: pyproject.toml
	$(PY) -m venv .venv
	$(BIN)/pip install -q --disable-pip-version-check "$(TORCH)"
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

.PHONY: demo test lint
demo: $(BIN)/wsl
	$(BIN)/wsl zoo make

test: $(BIN)/wsl
	$(BIN)/pytest

lint: $(BIN)/wsl
	$(BIN)/ruff format --check . && $(BIN)/ruff check .
