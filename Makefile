# Boundary Ledger: `make run` serves the app with demo data and a worker; `make test` runs
# the suite (on SQLite, or on PostgreSQL when DATABASE_URL=postgres://... is set).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: run test install install-dev lint migrations-check demo serve ci e2e-deps bench bench-search clean \
        e2e fuzz

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

run: install
	mkdir -p var
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_demo
	./scripts/serve.sh

demo: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_demo

test: install-dev
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

migrations-check: install-dev
	$(PY) manage.py makemigrations --check --dry-run

bench: install-dev
	$(PY) benchmarks/probe_engine.py
	$(PY) benchmarks/slice_scan.py

# Catalog search at 200,000 findings on PostgreSQL (DATABASE_URL names the server; the
# benchmark creates and drops its own database there).
bench-search: install-dev
	$(PY) benchmarks/search.py

ci:
	bash .ci/run

# Browser journeys only (screenshots in test-artifacts/e2e); needs /usr/bin/chromium.
e2e: install-dev
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

# A longer API fuzzing run than the suite's (FUZZ_EXAMPLES per operation, default 500).
FUZZ_EXAMPLES ?= 500
fuzz: install-dev
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest tests/test_fuzz.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var/test-*
