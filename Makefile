# The two commands a newcomer runs: `make demo` and `make test`. Everything else is a helper.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export PYTHONPATH := $(CURDIR):$(CURDIR)/plugins
# The demo's warehouse, staging and reports in ./data (an install's default is $AIRFLOW_HOME/zoom_qos).
export AIRFLOW__ZOOM_QOS__DATA_DIR := $(CURDIR)/data

# Test processes (pytest-xdist); a module's tests stay in one process, with its module fixtures.
PYTEST_WORKERS ?= auto

.PHONY: demo test lint install install-dev clean bench

$(VENV)/.runtime: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	# the project itself, editable: registers the zoom_videosdk connection type with Airflow
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

## Start the simulator, run the DAG over the last three days into data/warehouse.db (WAREHOUSE=postgres: into PostgreSQL), print counts.
demo: $(VENV)/.runtime
	PATH=$(CURDIR)/$(BIN):$$PATH bash include/scripts/demo.sh

## Lint, the import contract and type-check, then the whole test suite (the slow infrastructure-fault
## runs are `make chaos`).
test: lint
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile -m "not chaos" $(PYTEST_ARGS)

## Our own infrastructure failing in real runs (Redis killed, PostgreSQL killed or restarted, staging or
## the SQLite warehouse full or read-only), one after another; prints the fault table and writes it to
## bench/chaos.md. Needs root (tmpfs and bind mounts), redis-server and PostgreSQL's initdb.
.PHONY: chaos
chaos: $(VENV)/.dev
	PATH=$(CURDIR)/$(BIN):$$PATH ZOOM_QOS_CHAOS_TABLE=$(CURDIR)/bench/chaos.md \
		$(BIN)/python -m pytest -n 0 -m chaos tests/chaos $(PYTEST_ARGS)

## Benchmarks against the simulator (PostgreSQL on 127.0.0.1:5432): bench/results.json and bench/results.md.
bench: $(VENV)/.runtime bench/requirements.txt
	sed 's/\[[a-z,]*\]//' requirements.txt > $(VENV)/.bench-constraints.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r bench/requirements.txt -c $(VENV)/.bench-constraints.txt
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m bench.run $(BENCH_ARGS)

## ruff; the layers and cycles of the package (import-linter, [tool.importlinter] in pyproject.toml) and
## the import rules it cannot see (include/scripts/import_rules.py); mypy.
lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m include.scripts.import_rules
	$(BIN)/mypy

clean:
	rm -rf .airflow data .pytest_cache

## A real Airflow cluster on this machine (api-server, scheduler, dag-processor, triggerer, two Celery
## workers; Redis broker; PostgreSQL): backfill three days, SIGKILL a worker mid-run, check the warehouse.
.PHONY: cluster-test
cluster-test: $(VENV)/.dev
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m include.scripts.cluster_test $(CLUSTER_TEST_ARGS)

## Install the package as a user does: build the wheel, install it (not editable) with apache-airflow and
## its declared dependencies into a fresh venv, copy its DAG into an empty Airflow home, run it against
## the simulator, check the warehouse and the provider. Needs no .venv (INSTALL_TEST_ARGS=--cold-cache).
.PHONY: install-test
install-test:
	$(PYTHON) -m include.scripts.install_test $(INSTALL_TEST_ARGS)

## The call-quality dashboard in Apache Superset 6.1.0 (its own venv in .superset/): the demo into PostgreSQL,
## the dashboard imported, Superset left running on http://127.0.0.1:8088 (`make bi-stop` stops it).
.PHONY: bi-demo bi-stop bi-test
bi-demo: $(VENV)/.runtime
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m include.scripts.superset_bi demo
bi-stop:
	$(BIN)/python -m include.scripts.superset_bi stop

## The dashboard tested for real: a fresh Superset venv, the bundle imported against a warehouse loaded by our
## DAGs, every chart's data through Superset's REST API, the dashboard checked logged in in headless Chromium
## (Debian's chromium and chromium-driver), the screenshot in docs/images/, a second import still one dashboard.
bi-test: $(VENV)/.runtime
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m include.scripts.superset_bi test

## Zoom's webhooks driving the loads on real Airflow processes (api-server, scheduler, dag-processor,
## triggerer; LocalExecutor; PostgreSQL): signed session.ended notifications to the receiver, each session
## loaded through the triggerer's watcher and zoom_videosdk_qos_events, latency reported; forged, stale,
## unsigned and oversized requests change nothing.
.PHONY: events-test
events-test: $(VENV)/.dev
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m include.scripts.events_test $(EVENTS_TEST_ARGS)
