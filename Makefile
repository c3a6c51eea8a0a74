# Two commands on a fresh machine: `make demo` and `make test`. Everything else is a step of those.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install browser test test-fast lint-imports bench demo up down status clean

install: $(STAMP) browser

# Headless Chromium and its driver from Debian's packages, for the console's browser tests
# and docs/screenshots.py (Selenium is pointed at /usr/bin/chromedriver: nothing is
# downloaded at test time). Skipped when both are there; needs root (CI runs as root).
BROWSER_PACKAGES := chromium chromium-driver fonts-dejavu-core

browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(BROWSER_PACKAGES); \
	else \
	  echo "make browser: run as root, or: sudo apt-get install $(BROWSER_PACKAGES)" >&2; exit 1; \
	fi

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
