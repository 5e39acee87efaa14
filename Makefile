# gmp-book: two commands set up a fresh clone.
#   make book  - create .venv, install, build the whole book (every chapter executed)
#   make test  - create .venv if needed, install, run every test (pytest + nbval)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Offline data: point the loaders at ../shared/data when it exists (CI lays it out so).
ifneq ($(wildcard ../shared/data),)
export GMP_DATA_DIR ?= $(abspath ../shared/data)
endif
export MPLBACKEND ?= Agg
export PYTHONHASHSEED ?= 0

.PHONY: install book book-noexec test test-unit test-notebooks test-browser lint lab bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24"
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

book: install
	$(BIN)/jupyter-book build . --all -W -n --keep-going
	@echo "The book is at $(abspath _build/html/index.html)"

test: install test-unit test-notebooks

test-unit: install
	$(BIN)/python -m pytest -q -n 2 tests

test-notebooks: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --nbval-lax --nbval-sanitize-with tests/sanitize.cfg -p no:cacheprovider book notebooks

lint: install
	$(BIN)/ruff check gmp tests benchmarks

lab: install
	$(BIN)/jupyter lab notebooks

clean:
	rm -rf _build .pytest_cache
