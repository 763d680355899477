# The two commands a newcomer needs: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint run clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/schoolbot demo

# The suite on four pytest-xdist workers, two per core of the development machine: about half of the
# suite's time is waiting (subprocesses starting, fakes answering, polls), so two workers a core finish
# sooner than one; work stealing keeps the long tests (a 20 s burst, a 14 s wave) from ending the run
# alone on one worker (914 tests: 141-153 s on two workers, 121-151 s on four, 99-100 s on four with
# worksteal). Each worker migrates its own template database and PostgreSQL template; a targeted run
# (`.venv/bin/python -m pytest tests/x.py -x -q`) stays serial.
# Byte-code caches even where the environment turns them off (PYTHONDONTWRITEBYTECODE): without them
# each worker, and each `schoolbot` the tests start, compiles the whole tree again (3 s of CPU apiece).
test: export PYTHONDONTWRITEBYTECODE :=
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -n 4 --dist worksteal

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

run: $(STAMP)
	$(BIN)/schoolbot run

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
