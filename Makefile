# The order saga: every task a developer or CI runs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
RUNTIME := $(VENV)/.runtime
STAMP := $(VENV)/.installed
REDOC := third_party/redoc/redoc.standalone.js
PIP_INSTALL := $(BIN)/pip install -q --disable-pip-version-check -c constraints.txt
export PATH := $(BIN):$(PATH)

.PHONY: help venv venv-runtime docs-ui architecture gen check-gen vendor lint fmt typecheck buf check test test-unit test-contract \
        test-integration test-e2e release-contracts lock clean up bench chaos

help: ## List the targets (colour only on a terminal)
	@if [ -t 1 ]; then fmt='  \033[36m%-18s\033[0m %s\n'; else fmt='  %-18s %s\n'; fi; \
	grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -v fmt="$$fmt" 'BEGIN {FS = ":.*## "} {printf fmt, $$1, $$2}'

# Two layers: what running the system needs (make up), then the developer toolchain (make test).
$(RUNTIME): pyproject.toml gen/pyproject.toml client/pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -e ./gen -e ./client -e '.[stack]'
	@touch $@

$(STAMP): $(RUNTIME)
	$(PIP_INSTALL) -e '.[dev]'
	@touch $@

venv-runtime: $(RUNTIME) ## Create .venv with only what running the system needs (the services, the stack binaries, the client)

venv: $(STAMP) docs-ui ## Create .venv with everything: the runtime plus the developer toolchain (pinned by constraints.txt)

# The gateway's /docs page runs Redoc from the gateway itself, never a CDN: the pinned release, fetched once with
# the machine's npm from the npm registry and checked against its pinned integrity. Without npm (or offline) it
# says so and /docs is a notice; /openapi.json is served either way.
docs-ui: $(REDOC) ## Copy the /docs page's script (Redoc, pinned in devstack/redoc.py) from the npm registry with npm

$(REDOC): devstack/redoc.py
	$(PYTHON) -m devstack.redoc install --optional

vendor: $(STAMP) ## Copy the third-party protos (google.api/rpc/type) into third_party/proto for buf
	$(BIN)/python -m tools.protogen vendor

gen: $(STAMP) ## Regenerate gen/, the gateway descriptor set and docker-compose's nats-users.conf from proto/
	$(BIN)/python -m tools.protogen gen
	$(BIN)/python -m devstack.natsauth config --write

check-gen: $(STAMP) ## Fail if gen/, the descriptor set or nats-users.conf is stale against proto/
	$(BIN)/python -m tools.protogen check
	$(BIN)/python -m devstack.natsauth config --check

buf: vendor ## buf lint (STANDARD + COMMENTS) and buf breaking against the released baseline
	buf lint proto
	buf breaking proto --against proto/baseline.binpb

release-contracts: vendor ## Record the current contracts as the released baseline that buf breaking guards
	buf build proto -o proto/baseline.binpb

lint: $(STAMP) ## ruff lint + format check
	ruff check .
	ruff format --check .

fmt: $(STAMP) ## Format and auto-fix with ruff
	ruff format .
	ruff check --fix .

typecheck: $(STAMP) ## mypy --strict on all hand-written code
	mypy

architecture: $(STAMP) ## The import rules (import-linter): runtime apart from tooling, services apart, pure domain
	lint-imports

check: lint typecheck architecture buf check-gen ## Every static check: ruff, mypy, import rules, buf, stale gen/

up: $(RUNTIME) docs-ui ## Run the whole system here (nats-server, 3 services, Envoy on http://127.0.0.1:8080); Ctrl-C stops it; CLUSTER=1: 3 NATS nodes, 2 replicas each
	@$(BIN)/python -m devstack.up

chaos: $(STAMP) ## Orders through the gateway while NATS nodes and replicas fail; one JSON verdict, exit 1 if an invariant broke (CHAOS_ARGS=...)
	@$(BIN)/python -m devstack.chaos $(CHAOS_ARGS)

bench: $(STAMP) ## Benchmark the saga end to end beside this machine's raw limits; one JSON document (BENCH_ARGS=...)
	@$(BIN)/python -m bench $(BENCH_ARGS)

test: check docs-ui ## Install what is missing, run every check and every test tier
	pytest

test-unit: $(STAMP) ## Only the fast unit tests
	pytest -m unit

test-contract: $(STAMP) docs-ui ## Only the contract tests
	pytest -m contract

test-integration: $(STAMP) ## Only the integration tests (real nats-server, stores and service processes)
	pytest -m integration

test-e2e: $(STAMP) docs-ui ## Only the end-to-end tests (every process plus Envoy, and `make up` itself)
	pytest -m e2e

lock: ## Re-pin constraints.txt from a fresh resolve of pyproject.toml
	rm -rf /tmp/order-saga-lock && $(PYTHON) -m venv /tmp/order-saga-lock
	/tmp/order-saga-lock/bin/pip install -q -e ./gen -e ./client -e '.[dev]'
	{ echo '# Pinned versions of every Python package the project installs (make venv uses them).'; \
	  echo '# Regenerate with `make lock` after changing pyproject.toml.'; \
	  /tmp/order-saga-lock/bin/pip freeze --exclude-editable | grep -v '^order-saga'; } > constraints.txt

clean: ## Remove the venv, caches and local data
	rm -rf $(VENV) third_party .mypy_cache .ruff_cache .pytest_cache data var artifacts
