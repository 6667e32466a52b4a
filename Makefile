# Everything a newcomer needs: python3 (3.11+) and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run migrate test lint format schema seed clean audit fuzz

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

## Serve the API on http://127.0.0.1:8000/graphql (embedded PostgreSQL unless DATABASE_URL is set).
run: install
	$(BIN)/incidents migrate
	$(BIN)/incidents serve --demo

migrate: install
	$(BIN)/incidents migrate

## The lint and format checks, then the whole suite against real PostgreSQL (embedded unless
## TEST_DATABASE_URL is set).
test: install lint tests/e2e/axe/node_modules/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## ruff's checks and its formatter's check (pyproject.toml says which rules, and why).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## Apply ruff's fixes and its formatting.
format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Regenerate the committed schema.graphql from the code.
schema: install
	$(BIN)/python -m app.api.schema > schema.graphql

seed: install
	$(BIN)/incidents seed

clean:
	rm -rf $(VENV) .data

## GraphQL-over-HTTP compliance: graphql-http's auditServer against a live server.
tests/audit/node_modules/.installed: tests/audit/package.json tests/audit/package-lock.json
	cd tests/audit && npm ci --no-audit --no-fund --silent
	@touch $@

audit: install tests/audit/node_modules/.installed
	$(BIN)/python -m tests.live -- node tests/audit/audit.mjs

## graphql-schema-linter over the committed schema.graphql; the rules and why in
## tests/schema-lint/graphql-schema-linter.config.js.
.PHONY: schema-lint
tests/schema-lint/node_modules/.installed: tests/schema-lint/package.json tests/schema-lint/package-lock.json
	cd tests/schema-lint && npm ci --no-audit --no-fund --silent
	@touch $@

schema-lint: tests/schema-lint/node_modules/.installed
	cd tests/schema-lint && node_modules/.bin/graphql-schema-linter ../../schema.graphql

## Fuzzing with schemathesis (GraphQL mode) against a live server; FUZZ_EXAMPLES per operation.
.venv-fuzz/.installed: tests/fuzz/requirements.lock
	@test -x .venv-fuzz/bin/python || $(PYTHON) -m venv .venv-fuzz
	.venv-fuzz/bin/python -m pip install --quiet --disable-pip-version-check -r tests/fuzz/requirements.lock
	@touch $@

fuzz: install .venv-fuzz/.installed
	$(BIN)/python -m tests.live -- tests/fuzz/fuzz.sh

## Real clients (issue 12): Relay's compiler and GraphQL Code Generator (+ tsc) against
## schema.graphql, then Apollo Client, urql, Relay's compiled documents, Python's gql, and the
## subscriptions with graphql-ws and graphql-sse (issue 13) against a live server (docs/clients.md).
.PHONY: clients
tests/clients/node_modules/.installed: tests/clients/package.json tests/clients/package-lock.json
	cd tests/clients && npm ci --no-audit --no-fund --silent
	@touch $@

.venv-clients/.installed: tests/clients/requirements.lock
	@test -x .venv-clients/bin/python || $(PYTHON) -m venv .venv-clients
	.venv-clients/bin/python -m pip install --quiet --disable-pip-version-check -r tests/clients/requirements.lock
	@touch $@

clients: install tests/clients/node_modules/.installed .venv-clients/.installed
	tests/clients/compile.sh
	$(BIN)/python -m tests.live -- tests/clients/live.sh

## Web console (issue 5): browser tests in Debian's Chromium, driven by Playwright for Python,
## which launches /usr/bin/chromium and downloads no browser of its own.
.PHONY: e2e-deps e2e screenshots
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

## Debian's chromium package, once (idempotent), and axe-core from npm for the accessibility checks.
tests/e2e/axe/node_modules/.installed: tests/e2e/axe/package.json tests/e2e/axe/package-lock.json
	cd tests/e2e/axe && npm ci --no-audit --no-fund --silent
	@touch $@

e2e-deps: tests/e2e/axe/node_modules/.installed
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

## The end-to-end tests: a live `incidents serve`, real PostgreSQL, headless Chromium.
e2e: install e2e-deps
	$(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS)

## PNGs of the console over the demo data, into docs/screenshots/ (or SCREENSHOTS_DIR).
screenshots: install e2e-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/e2e/screenshots.py

## Benchmark (issue 3): `make bench` at 1,000,000 incidents, `make bench SCALE=small` at 100,000.
## Seeds its own database under .data/bench once per scale (or on BENCH_DATABASE_URL's server),
## installs Debian's wrk once, prints a table and a JSON line.
.PHONY: bench bench-deps
SCALE ?= full
BENCH_SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

bench-deps:
	@missing=; command -v wrk >/dev/null || missing="$$missing wrk"; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	[ -z "$$missing" ] || { $(BENCH_SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(BENCH_SUDO) apt-get install -y -qq $$missing; }

bench: install bench-deps
	$(BIN)/python -m tests.bench.run $(SCALE)

## Soak (issue 18): a compressed SOC day, SOAK_MINUTES (default 15) of ingestion, moves, incident
## detail and typeahead at once on the benchmark's database; a line per minute, a JSON line and a
## PNG (SOAK_PLOT, default under .data/) drawn with matplotlib from .venv-plot.
.PHONY: soak
.venv-plot/.installed: tests/bench/plot-requirements.lock
	@test -x .venv-plot/bin/python || $(PYTHON) -m venv .venv-plot
	.venv-plot/bin/python -m pip install --quiet --disable-pip-version-check -r tests/bench/plot-requirements.lock
	@touch $@

soak: install .venv-plot/.installed
	$(BIN)/python -m tests.bench.soak $(SCALE)

## Per-layer CPU of a cheap typeahead request (issue 19): our server, the floor and PostGraphile,
## sampled with py-spy (pinned, into .venv-profile) and node --cpu-prof. Use SCALE=small.
.PHONY: bench-profile
.venv-profile/.installed: tests/bench/profile-requirements.txt
	@test -x .venv-profile/bin/python || $(PYTHON) -m venv .venv-profile
	.venv-profile/bin/python -m pip install --quiet --disable-pip-version-check -r tests/bench/profile-requirements.txt
	@touch $@

bench-profile: install bench-deps .venv-profile/.installed
	$(BIN)/python -m tests.bench.profile $(SCALE)
