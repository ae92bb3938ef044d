# magsync: `make run` syncs the sample data into SQLite; `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
SCALE ?= 1m
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW := ignore
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 90

.PHONY: install run test lint typecheck pytest bench bench-soap bench-fleet bench-stray-quote sample clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/magsync sync --source csv --input data/sample --full

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# The folders as the one package `magsync`, the way the wheel lays them out (see pyproject).
# mypy's cache lives with the venv: most of a cold check (about a minute of CPU) is the
# installed libraries' stubs and sources, which change only when the venv does; mypy
# re-checks whatever changed, so `make clean` need not throw that minute away.
typecheck: $(STAMP)
	@mkdir -p .typecheck/magsync
	@ln -sfn ../../magsync/__init__.py .typecheck/magsync/__init__.py
	@for d in flows extract transform load magento; do ln -sfn ../../$$d .typecheck/magsync/$$d; done
	$(VENV)/bin/mypy --cache-dir $(VENV)/.mypy_cache

# Three workers on two cores: the end-to-end tests spend much of their time waiting (a
# killed run's heartbeats running out, workers polling the server, held runs), and a third
# worker keeps both cores busy meanwhile.
pytest: $(STAMP)
	$(VENV)/bin/pytest -q -n 3 --dist worksteal --durations=25

bench: $(STAMP)
	$(PY) -m bench.run --scale $(SCALE)

bench-soap: $(STAMP)
	$(PY) -m bench.soap

# 6 emulator stores on 1, 2 and 4 Prefect process workers into one PostgreSQL (docs/scaling.md).
bench-fleet: $(STAMP)
	$(PY) -m bench.fleet_sim

# ~600k rows with stray quotes near line 500,000: exits 1 if the reader loses a record.
bench-stray-quote: $(STAMP)
	$(PY) -m bench.stray_quote

sample: $(STAMP)
	$(PY) data/make_sample.py

clean:
	rm -rf data/out bench/out .pytest_cache .mypy_cache .ruff_cache .typecheck
