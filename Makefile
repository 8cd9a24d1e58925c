# Koppel: every target bootstraps the virtual environment from the project's own files.
# The distribution's interpreter where it is 3.11 or newer and makes virtual environments, else
# python3 on PATH; `make PYTHON=...` picks another. Debian's build ran the benchmarks' syncs
# with a tenth to an eighth less CPU than pyenv's default one (docs/performance.md, section 29).
SYSTEM_PYTHON := /usr/bin/python3
PYTHON ?= $(shell $(SYSTEM_PYTHON) -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' \
	2>/dev/null && echo $(SYSTEM_PYTHON) || echo python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

CHROMIUM := /usr/bin/chromium
LOCALE := koppel/web/locale

.PHONY: demo demo-web test test-slow lint typecheck check bench bench-quick bench-products bench-orders \
	bench-stock bench-mapping bench-web bench-rate-limits bench-workers bench-freshness bench-idle \
	clean venv messages

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	touch $(STAMP)

# make demo ends with the summary; make demo-web then serves the web app over the demo until Ctrl-C.
demo: $(STAMP)
	$(BIN)/koppel demo --once

demo-web: $(STAMP)
	$(BIN)/koppel demo

# The browser tests drive Debian's Chromium; Playwright never downloads a browser of its own.
$(CHROMIUM):
	apt-get install -y chromium || (apt-get update && apt-get install -y chromium)

# Two workers (pytest-xdist), a test file each at a time: the tests mostly wait on HTTP and processes.
TEST_WORKERS ?= 2

test: $(STAMP) $(CHROMIUM)
	$(BIN)/pytest -m "not slow" -n $(TEST_WORKERS) --dist loadfile

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

bench-rate-limits: $(STAMP)
	$(BIN)/python -m bench.rate_limits

# Six integrations of 5,000 products at 50 ms with 1, 2 and 3 `koppel worker` processes on
# PostgreSQL (KOPPEL_BENCH_POSTGRES_URL, default postgres@127.0.0.1:5432: databases of its own,
# dropped); BENCH_ARGS=--quick for 1,000 products.
bench-workers: $(STAMP)
	$(BIN)/python -m bench.workers $(BENCH_ARGS)

# A change until it is in the other system: through webhooks, and by short polling (50 ms latency)
bench-freshness: $(STAMP)
	$(BIN)/python -m bench.freshness

# The web app's pages over a store of 1,000,000 outcomes, on SQLite and on PostgreSQL
# (KOPPEL_BENCH_POSTGRES_URL, default postgres@127.0.0.1:5432: a database of its own, dropped).
bench-web: $(STAMP)
	$(BIN)/python -m bench web

# koppel sync with nothing to do, as separate processes (the fixed cost of a run).
bench-idle: $(STAMP)
	$(BIN)/python -m bench idle

# The web app's texts: extract them, then add the new ones to the Dutch and German catalogues
# (translate the empty msgstr entries; tests/web/test_catalogue.py fails until they are).
messages: $(STAMP)
	$(BIN)/pybabel -q extract -F $(LOCALE)/babel.cfg -o $(LOCALE)/messages.pot --no-location \
		--omit-header --sort-output .
	$(BIN)/pybabel -q update -i $(LOCALE)/messages.pot -d $(LOCALE) --no-fuzzy-matching \
		--ignore-obsolete --ignore-pot-creation-date

clean:
	rm -rf $(VENV) .koppel .pytest_cache .mypy_cache .ruff_cache .artifacts
