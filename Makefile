# Thin entry points. `make run`: the whole platform on this machine. `make test`: every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
# checkov (policy checks of the rendered chart) lives in a venv of its own: its pins clash with ours.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(shell cksum < requirements-checkov.lock | cut -d' ' -f1)

.PHONY: run test faults lint venv checkov services proto proto-check bench clean settings-table ops-check dashboards

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip setuptools wheel
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

$(CHECKOV_STAMP): requirements-checkov.lock
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q -U pip
	$(CHECKOV_VENV)/bin/python -m pip install -q -r requirements-checkov.lock
	@rm -f $(CHECKOV_VENV)/.installed-* && touch $@

checkov: $(CHECKOV_STAMP)

services:
	@scripts/ensure-services.sh

run: venv services
	$(PY) scripts/devstack.py

# Every test; the ops check (tests/ops) is part of it.
test: venv checkov services
	$(PY) -m pytest

# The fault-injection suite (tests/faults): a private RabbitMQ node stopped, started and blocked,
# the retriever and the databases taken away, the gateway and the workers killed and terminated,
# while clients upload and watch jobs (README: Reliability). Two groups run at once.
faults: venv
	PY=$(PY) scripts/faults.sh

# The monitoring proven on one machine: the platform, a real Prometheus scraping it as the chart's
# monitors say, the chart's rules, dashboards and canary analysis asserted against live series;
# promtool checks and tests of the rules; the canary checks on synthetic series (README: Operate).
OPS_TESTS := tests/ops tests/deploy/test_rules.py tests/deploy/test_analysis.py tests/deploy/test_rollouts.py \
	tests/deploy/test_monitoring.py tests/deploy/test_dashboards.py
ops-check: venv services
	$(PY) -m pytest $(OPS_TESTS) -q

# ruff (pyflakes, pycodestyle, import order, bugbear, async rules) and mypy, configured in pyproject.toml.
LINT_PATHS := services tests bench scripts conftest.py
TYPED_PATHS := services/common/src services/gateway/src services/scraper/src services/retriever/src \
	services/ingest/src services/imagegen/src services/cli/src

lint: venv
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/mypy $(TYPED_PATHS)

proto: venv
	scripts/genproto.sh

# The Grafana dashboards (helm/genai/dashboards/*.json), from scripts/dashboards.py.
dashboards: venv
	$(PY) scripts/dashboards.py

# The README's configuration table, from the services' settings classes.
settings-table: venv
	$(PY) scripts/settings_table.py

bench: venv services
	@for b in bench/*.py; do case $$b in */_*|*_data.py) continue;; esac; echo "== $$b"; $(PY) $$b --quick || exit 1; done

clean:
	rm -rf var .pytest_cache
