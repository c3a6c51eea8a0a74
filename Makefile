# Two commands on a fresh machine: `make demo` and `make test`. Everything else is a step of those.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install test test-fast lint-imports bench demo up down status clean

install: system-packages $(STAMP)

# Debian packages the tests use: `prometheus` (a real Prometheus scrapes the test stack, and
# `promtool` checks the monitoring files). Quick when already installed; as root, or with sudo.
APT_PACKAGES := prometheus
APT_GET := DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo -n )apt-get
.PHONY: system-packages
system-packages:
	@command -v promtool >/dev/null 2>&1 || { $(APT_GET) update -q && $(APT_GET) install -y -q --no-install-recommends $(APT_PACKAGES); }

# uv (from PyPI) builds the venv in seconds; the venv is rebuilt when pyproject.toml changes.
UV := python3 -m uv

$(STAMP): pyproject.toml
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install -q uv
	$(UV) venv -q --allow-existing --python python3.11 $(VENV)
	$(UV) pip install -q --compile-bytecode --python $(VENV)/bin/python -e '.[dev]'
	@touch $@

test: install lint-imports
	$(VENV)/bin/pytest -q

# The edit-test loop: the layers and every suite that starts no service (a few minutes).
test-fast: install lint-imports
	$(VENV)/bin/pytest -q -m "not services"

# The import layers of docs/architecture.md (contracts in pyproject.toml).
lint-imports: install
	$(VENV)/bin/lint-imports

bench: install
	$(PY) bench/bench_process.py

demo: install
	$(VENV)/bin/ivi demo

up: install
	$(VENV)/bin/ivi up

down:
	$(VENV)/bin/ivi down

status:
	$(VENV)/bin/ivi status

clean:
	rm -rf $(VENV) .data .pytest_cache

# 200 uploads at once at 1, 2 and 4 concurrent runs (a stack of its own; ~40 min on 2 cores).
.PHONY: bench-load
bench-load: install
	$(PY) bench/bench_load.py
