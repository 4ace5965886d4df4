# Boundary Ledger: `make run` serves the app with demo data and a worker; `make test` runs
# the suite (on SQLite, or on PostgreSQL when DATABASE_URL=postgres://... is set).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# Where `make run` serves: `make run PORT=8001` (HOST=0.0.0.0 listens on every interface).
# Both reach the app too, whose links in e-mails point there unless SITE_URL says otherwise.
HOST   ?= 127.0.0.1
PORT   ?= 8000
export HOST PORT
# One line per step of `make run`, so that a first run says what it is waiting for.
step = @printf '\n==> %s\n' $(1)

.PHONY: run test install install-dev lint migrations-check demo serve ci e2e-deps bench bench-search clean \
        e2e fuzz

# requirements*.txt are compiled by pip-tools from the short requirements*.in files, with every
# dependency pinned and hashed, so a fresh machine installs exactly what CI tested: edit the
# .in files, then `make requirements`. --require-hashes refuses anything unpinned or altered.
PIP_INSTALL := $(PIP) install --require-hashes
PIP_COMPILE := $(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
               --no-emit-index-url --no-emit-find-links

$(VENV)/.runtime: requirements.txt
	$(call step,"Creating the virtual environment $(VENV)")
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(call step,"Installing dependencies into $(VENV) from requirements.txt (a first run takes a few minutes)")
	$(PIP) install --upgrade pip
	$(PIP_INSTALL) -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(call step,"Installing development tools into $(VENV) from requirements-dev.txt")
	$(PIP_INSTALL) -r requirements-dev.txt
	touch $@

# Recompile the three lock files from the .in files, in order: requirements-dev.in is constrained
# by requirements.txt, requirements-bench.in by requirements-dev.txt. Pins already in a .txt are
# kept; to move one, edit its .in file or pass e.g. PIP_COMPILE_ARGS=--upgrade-package=NAME.
.PHONY: requirements
requirements: $(VENV)/.dev
	$(PIP_COMPILE) $(PIP_COMPILE_ARGS) -o requirements.txt requirements.in
	$(PIP_COMPILE) $(PIP_COMPILE_ARGS) -o requirements-dev.txt requirements-dev.in
	$(PIP_COMPILE) $(PIP_COMPILE_ARGS) -o requirements-bench.txt requirements-bench.in

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

run: install
	$(call step,"Dependencies installed in $(VENV)")
	@mkdir -p var
	$(call step,"Migrating the database")
	$(PY) manage.py migrate --noinput
	$(call step,"Loading the demo catalog (the first time it trains the demo models: a minute or two)")
	$(PY) manage.py load_demo
	$(call step,"Starting the app on $(HOST):$(PORT) and a worker")
	./scripts/serve.sh

demo: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_demo

# The suite runs in TEST_WORKERS processes (pytest-xdist; `make test TEST_WORKERS=0` runs it
# in this one). --dist loadgroup hands each xdist_group to one process (the tests that start
# real worker clusters run one after another). Tests marked exclusive restart the database
# server, which would break the other processes' connections: they run first, on their own,
# then everything else in parallel. PYTEST_ARGS go to both runs (e.g. PYTEST_ARGS="-k reruns
# -x"); `make test` fails when either run does.
TEST_WORKERS ?= 2
XDIST        := -n $(TEST_WORKERS) --dist loadgroup
test: install-dev
	status=0; \
	$(PY) -m pytest --exclusive=only $(PYTEST_ARGS) -n 0 || status=$$?; \
	$(PY) -m pytest --exclusive=none $(XDIST) $(PYTEST_ARGS) || status=$$?; \
	exit $$status

# Style, layers, types and migrations: what CI checks before the tests (and what the
# pre-commit hooks in .pre-commit-config.yaml run).
lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

migrations-check: install-dev
	$(PY) manage.py makemigrations --check --dry-run

$(VENV)/.bench: $(VENV)/.dev requirements-bench.txt
	$(PIP_INSTALL) -r requirements-bench.txt
	touch $@

bench: $(VENV)/.bench
	$(PY) benchmarks/probe_engine.py
	$(PY) benchmarks/slice_scan.py

# Catalog search at 200,000 and 1,000,000 findings on PostgreSQL (DATABASE_URL names the
# server; the benchmark creates and drops its own databases there): p50/p95 per query at
# each size, the worst p95's growth against its target (at most 1.5x) and what grows
# first. About 20 minutes; BENCH_SEARCH_ARGS="--sizes 200000" measures one size.
bench-search: install-dev dev-role
	$(PY) benchmarks/search.py $(BENCH_SEARCH_ARGS)

ci:
	bash .ci/run

# Browser journeys only (screenshots in test-artifacts/e2e); needs /usr/bin/chromium.
e2e: install-dev
	$(PY) -m pytest tests/e2e $(XDIST) $(PYTEST_ARGS)

# A longer API fuzzing run than the suite's (FUZZ_EXAMPLES per operation, default 500).
FUZZ_EXAMPLES ?= 500
fuzz: install-dev
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest tests/test_fuzz.py $(XDIST) $(PYTEST_ARGS)

# Faults, scale-out and load: real qcluster and gunicorn processes on PostgreSQL (and
# Redis at 127.0.0.1:6379). FAULTS_DATABASE_URL names the server (the tests create their
# own test database there); `make faults` restarts that server once, as root.
FAULTS_DATABASE_URL ?= $(or $(DATABASE_URL),postgres://boundary_dev:dev@127.0.0.1:5432/boundary_faults)
FAULT_KILLS ?= 20
.PHONY: faults load scale-out rerun-e2e dev-role

# The default FAULTS_DATABASE_URL's role, created once on a local server that trusts the
# postgres user (as a fresh development machine's does); skipped when a URL is given.
dev-role:
	@if [ -z "$(DATABASE_URL)" ] && [ "$(origin FAULTS_DATABASE_URL)" = "file" ]; then \
	  psql -w -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'boundary_dev'" \
	    | grep -q 1 \
	  || psql -w -h 127.0.0.1 -U postgres -qc "CREATE ROLE boundary_dev LOGIN CREATEDB PASSWORD 'dev'" \
	  || { echo "Could not create the PostgreSQL role boundary_dev: set FAULTS_DATABASE_URL."; exit 1; }; \
	fi

# The fault tests in full: FAULT_KILLS workers killed mid-rerun (per broker), hanging
# probes, a PostgreSQL restart under load, a full disk; then the scale-out and load tests.
faults: install-dev dev-role
	DATABASE_URL=$(FAULTS_DATABASE_URL) FAULT_KILLS=$(FAULT_KILLS) FAULTS_RESTART_POSTGRES=1 \
		$(PY) -m pytest -v -s tests/test_faults.py tests/test_scale_out.py tests/test_load_smoke.py $(PYTEST_ARGS)

# 20 users for 60 s against gunicorn while a rerun runs: p50/p95 per request type, errors,
# then the throughput of the list endpoint and of the catalog page as ratios of /healthz's
# against their targets, with the CPU time per request (its own database on that server).
load: install-dev dev-role
	BENCH_DATABASE_URL=$(dir $(FAULTS_DATABASE_URL))bench_load $(PY) benchmarks/load.py

# One worker cluster against two sharing Redis: 500 probes, wall times and the speed-up.
scale-out: install-dev dev-role
	BENCH_DATABASE_URL=$(dir $(FAULTS_DATABASE_URL))bench_scale_out $(PY) benchmarks/scale_out.py

# Registering a version until all its runs are stored, with one worker, against the engine.
rerun-e2e: install-dev dev-role
	BENCH_DATABASE_URL=$(dir $(FAULTS_DATABASE_URL))bench_rerun_e2e $(PY) benchmarks/rerun_e2e.py

clean:
	rm -rf $(VENV) var/test-*
