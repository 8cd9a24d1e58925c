# Koppel: every target bootstraps the virtual environment from the project's own files.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-slow lint typecheck check bench bench-quick bench-products bench-orders \
	bench-stock bench-mapping clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/koppel demo --once

test: $(STAMP)
	$(BIN)/pytest -m "not slow"

test-slow: $(STAMP)
	$(BIN)/pytest -m slow

lint: $(STAMP)
	$(BIN)/ruff check koppel tests bench
	$(BIN)/ruff format --check koppel tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

bench: $(STAMP)
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

bench-products bench-orders bench-stock bench-mapping: bench-%: $(STAMP)
	$(BIN)/python -m bench $*

clean:
	rm -rf $(VENV) .koppel .pytest_cache .mypy_cache .ruff_cache
