# The two commands: `make run` (the app with demo data) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PG_VERSION := $(shell ls /etc/postgresql 2>/dev/null | head -n1)
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/dunning
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: run test test-clocks lint bench simulate services chromium gettext messages compiled-messages clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Re-install only when a requirements file changed.
$(VENV)/.installed-run: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run compiled-messages
	DEBUG=true $(BIN)/python -m dunning_site.devserver

# Start PostgreSQL and Redis when they are installed but not running (CI starts from a clean machine).
services:
	@if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then \
		echo "Starting PostgreSQL $(PG_VERSION)"; \
		pg_ctlcluster --skip-systemctl-redirect $(PG_VERSION) main start; \
		for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; \
	fi
	@if command -v redis-server >/dev/null && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then \
		echo "Starting Redis"; \
		mkdir -p /var/lib/redis /var/log/redis; \
		redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
			--dir /var/lib/redis --logfile /var/log/redis/ci.log; \
		for i in $$(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done; \
	fi

# The browser tests drive Debian's Chromium (Playwright's own browser download is not used).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
		echo "Installing Debian's chromium for the browser tests"; \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium >/dev/null; }; \
	fi

# Translations: msgfmt and xgettext are Debian's gettext, installed as chromium is when missing.
gettext:
	@if ! command -v msgfmt >/dev/null || ! command -v xgettext >/dev/null; then \
		echo "Installing Debian's gettext for the translations"; \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q gettext >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q gettext >/dev/null; }; \
	fi

# The .po files (locale/<language>/LC_MESSAGES/django.po) are committed; the .mo files are compiled
# from them here, by `make run` and `make test`, and never committed.
compiled-messages: $(VENV)/.installed-run gettext
	DEBUG=true $(BIN)/python manage.py compilemessages --verbosity 0

# After marking new customer-facing words: add them to every .po file (to be translated there), then
# compile. The test suite fails while a .po file lacks a marked string or a translation.
messages: $(VENV)/.installed-run gettext
	DEBUG=true $(BIN)/python manage.py makemessages
	DEBUG=true $(BIN)/python manage.py compilemessages --verbosity 0

# The walls: import-linter's contracts (pyproject.toml: the apps' layers, the rooms of collections) and the import-cycle check
# (any import cycle among the project's modules fails).
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/python tools/import_cycles.py

test: $(VENV)/.installed-dev services chromium compiled-messages lint
	DEBUG=true $(BIN)/python manage.py makemigrations --check --dry-run
	DEBUG=true $(BIN)/python manage.py check
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/pytest
	$(MAKE) --no-print-directory test-clocks

# The clock-sensitive part of the suite again, with the whole test process's clock moved (pytest's
# --clock option, conftest.py): to a Sunday night, outside every contact window, and to a Monday
# morning. A test that reads "now" without fixing it fails in one of them, whatever day CI runs.
# The finance UI's page tests are left out: their conftest fixes the clock for every one of them.
# The two runs wait mostly on sockets and subprocesses, so they run side by side, each with its own
# database and Redis database; each one's output is in var/test-clock-<sunday or monday>.log.
CLOCK_SENSITIVE := dunning_site --ignore=dunning_site/collections/tests/views
CLOCK_RUNS := sunday-23:30,sunday,13 monday-10:00,monday,14
test-clocks: $(VENV)/.installed-dev services chromium compiled-messages
	@mkdir -p var; pids=""; redis=$(TEST_REDIS_URL); \
	for run in $(CLOCK_RUNS); do \
		clock=$${run%%,*}; rest=$${run#*,}; name=$${rest%%,*}; db=$${rest#*,}; \
		echo "pytest --clock=$$clock (var/test-clock-$$name.log)"; \
		DATABASE_URL=$(TEST_DATABASE_URL)_$$name REDIS_URL=$${redis%/*}/$$db \
			$(BIN)/pytest -q --clock=$$clock --output=test-results/clock-$$name $(CLOCK_SENSITIVE) \
			> var/test-clock-$$name.log 2>&1 & pids="$$pids $$name:$$!"; \
	done; \
	status=0; \
	for entry in $$pids; do \
		name=$${entry%%:*}; \
		if wait $${entry#*:}; then tail -n 1 var/test-clock-$$name.log; \
		else status=1; echo "--- pytest --clock ($$name) failed:"; cat var/test-clock-$$name.log; fi; \
	done; \
	exit $$status

bench: $(VENV)/.installed-dev services
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) DEBUG=true $(BIN)/python bench/tick.py

# A book of failed payments played through the real engine and through a fixed schedule (bench/simulate/):
# its own database (<TEST_DATABASE_URL>_sim) and Redis database (emptied); the last line is one JSON object.
CUSTOMERS ?= 2000
SEED ?= 1
SIMULATE_REDIS_URL ?= redis://127.0.0.1:6379/12
simulate: $(VENV)/.installed-dev services
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(SIMULATE_REDIS_URL) $(BIN)/python -m bench.simulate \
		--customers $(CUSTOMERS) --seed $(SEED)

clean:
	rm -rf $(VENV) var test-results
