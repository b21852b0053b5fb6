# fieldmesh: `make demo` and `make test` install what is missing and are safe to run again.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEBIAN_STAMP := .state/.debian-ok
NODE_STAMP := node_modules/.installed
NODE_BIN := node_modules/.bin
QUICK ?=
# pytest-xdist workers: each starts its own PostgreSQL and Mosquitto on free ports
TEST_WORKERS ?= 2
BENCH_ARGS := $(if $(QUICK),--quick,) $(if $(INSTANCES),--instances $(INSTANCES),) $(if $(CPU_S),--cpu-s $(CPU_S),) $(if $(UTTERANCES),--utterances $(UTTERANCES),)

.PHONY: help deps venv node demo run test lint lint-js typecheck up down status clean bench-% contracts

help:
	@echo "make demo   - install what is missing, start services, run the demo, leave the product running"
	@echo "make run    - run the product in the foreground (every role, supervised; Ctrl-C stops)"
	@echo "make test   - install what is missing and run the whole test suite"
	@echo "make bench-NAME [QUICK=1] - run bench/NAME.py (ingest, api, geo, routing, maintenance, ledger, ar, web, leads, churn, forecast, assistant, scale, calendar, calendar-booking, engage, automation, phone, devices, console)"

deps: $(DEBIAN_STAMP) venv node

$(DEBIAN_STAMP): deploy/install-debian.sh
	bash deploy/install-debian.sh
	@mkdir -p .state && touch $@

# An install is redone when what it was made from changed, not when a checkout made those
# files newer than it (a fresh worktree sharing an up-to-date node_modules through a
# symlink re-ran `npm ci` through it): each marker holds the sha256 of its sources.
sources_hash = $(shell cat $(1) 2>/dev/null | sha256sum | cut -c1-64)
stamp_current = $(filter $(call sources_hash,$(2)),$(shell cat $(1) 2>/dev/null))
# an earlier version's marker (empty, only its time told) newer than its sources: current
stamp_legacy = $(shell [ -f $(1) ] && [ ! -s $(1) ] && [ -z "$$(find $(2) -newer $(1))" ] && echo yes)
VENV_SOURCES := pyproject.toml
NODE_SOURCES := package.json package-lock.json
PIP_INSTALL ?= $(PY) -m pip install -q
NPM_CI ?= npm ci --no-audit --no-fund --loglevel=error

venv:
ifneq ($(call stamp_current,$(STAMP),$(VENV_SOURCES)),)
else ifneq ($(call stamp_legacy,$(STAMP),$(VENV_SOURCES)),)
	@echo $(call sources_hash,$(VENV_SOURCES)) > $(STAMP)
else
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade "pip>=24,<27"
	$(PIP_INSTALL) -e '.[dev]'
	@mkdir -p $(VENV) && echo $(call sources_hash,$(VENV_SOURCES)) > $(STAMP)
endif

node:
ifneq ($(call stamp_current,$(NODE_STAMP),$(NODE_SOURCES)),)
else ifneq ($(call stamp_legacy,$(NODE_STAMP),$(NODE_SOURCES)),)
	@echo $(call sources_hash,$(NODE_SOURCES)) > $(NODE_STAMP)
else
	$(NPM_CI)
	@mkdir -p node_modules && echo $(call sources_hash,$(NODE_SOURCES)) > $(NODE_STAMP)
endif

up: deps
	$(VENV)/bin/fieldmesh up

down:
	$(VENV)/bin/fieldmesh down

status:
	$(VENV)/bin/fieldmesh status

demo: deps
	$(VENV)/bin/fieldmesh demo

run: deps
	$(VENV)/bin/fieldmesh run

lint: venv lint-js
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/deptry .

# The browser JavaScript: JSDoc types checked by tsc (tsconfig.json, nothing emitted) and
# eslint (eslint.config.mjs; it ignores node_modules, .venv, .state, bench/out).
lint-js: node
	$(NODE_BIN)/tsc -p tsconfig.json
	$(NODE_BIN)/eslint .

typecheck: venv
	$(VENV)/bin/mypy

test: deps lint-js
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/deptry .
	$(VENV)/bin/pytest -q -p no:cacheprovider -n $(TEST_WORKERS)

contracts: venv node
	$(PY) -m ledger.compile

bench-%: deps
	$(PY) -m bench.$(subst -,_,$*) $(BENCH_ARGS)

clean:
	-$(VENV)/bin/fieldmesh down
	@# the database and mail dirs moved to /var/lib/fieldmesh (a clone root's services cannot enter)
	-@for l in .state/pg .state/mail; do \
		if [ -L "$$l" ]; then t=$$(dirname "$$(readlink -f "$$l")"); \
			case "$$t" in /var/lib/fieldmesh/?*) rm -rf "$$t";; esac; fi; done
	rm -rf .state
