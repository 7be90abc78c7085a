# Two commands for a newcomer: `make demo` (runs everything locally, no keys, no services)
# and `make test` (the whole suite against the real PostgreSQL, Redis and a local S3).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DATA_DIR ?= $(CURDIR)/.repazoo

export DAGSTER_HOME := $(DATA_DIR)/dagster
export REPAZOO_DATA_DIR := $(DATA_DIR)

.PHONY: install demo dev test services browser clean bench-pii

$(STAMP): pyproject.toml setup.py repazoo_assets/lib/privacy/_pii_fast.c repazoo_assets/lib/events/_json_check.c
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed, found " + sys.version.split()[0]'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@$(BIN)/python -c "from repazoo_assets.lib.privacy import pii; print('PII engine:', pii.ENGINE)"
	touch $@

install: $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/repazoo db upgrade
	$(BIN)/repazoo demo

dev: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

# Start PostgreSQL and Redis when they are installed but stopped; wait until they answer.
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || { \
	  command -v pg_ctlcluster >/dev/null && pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; \
	  for i in $$(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; }
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || { \
	  command -v redis-server >/dev/null && redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no; \
	  for i in $$(seq 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done; }

# The UI test drives Debian's Chromium through Playwright (no browser download); install it when
# missing and we may (root). Without it the browser test skips, saying why.
browser:
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; }; } || \
	  echo "chromium not installed: the browser test will be skipped"; }

test: install services browser $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/pytest

bench-pii: install
	$(BIN)/python bench/pii.py

clean:
	rm -rf $(DATA_DIR)
