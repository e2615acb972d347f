# Two commands on a fresh machine: `make run` and `make test`. Each installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
POETRY_VERSION := 2.5.1
POETRY_EXPORT_VERSION := 1.10.1
TOOLS := .tools
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck format pytest bench migrate lock clean

$(TOOLS)/bin/poetry:
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check \
		"poetry==$(POETRY_VERSION)" "poetry-plugin-export==$(POETRY_EXPORT_VERSION)"

# poetry.lock is the source of truth; pip installs exactly it, hashes checked.
$(STAMP): pyproject.toml poetry.lock | $(TOOLS)/bin/poetry
	$(TOOLS)/bin/poetry check --lock
	$(TOOLS)/bin/poetry export --with dev --all-extras --format requirements.txt --output .requirements.lock.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r .requirements.lock.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/auth-service serve

migrate: $(STAMP)
	$(BIN)/auth-service migrate

lint: $(STAMP)
	$(BIN)/ruff check src tests alembic bench scripts
	$(BIN)/ruff format --check src tests alembic bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy --strict src

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

format: $(STAMP)
	$(BIN)/ruff check --fix src tests alembic bench scripts
	$(BIN)/ruff format src tests alembic bench scripts

bench: $(STAMP)
	$(BIN)/python bench/token_endpoint.py
	$(BIN)/python bench/local_login.py

lock:
	scripts/relock.sh

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
