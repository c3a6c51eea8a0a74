# Two commands on a fresh machine: `make demo` and `make test`. Everything else is a step of those.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install test bench demo up down status clean

install: $(STAMP)

# uv when it can be had (fast), pip otherwise; the venv is rebuilt when pyproject.toml changes.
$(STAMP): pyproject.toml
	@if command -v uv >/dev/null 2>&1 || python3 -m pip install -q uv >/dev/null 2>&1; then \
	  python3 -m uv venv -q --allow-existing --python python3.11 $(VENV) 2>/dev/null || uv venv -q --allow-existing --python python3.11 $(VENV); \
	  VIRTUAL_ENV=$(abspath $(VENV)) (python3 -m uv pip install -q -e '.[dev]' 2>/dev/null || uv pip install -q -e '.[dev]'); \
	else \
	  python3 -m venv $(VENV) && $(PY) -m pip install -q -e '.[dev]'; \
	fi
	@touch $@

test: install
	$(VENV)/bin/pytest -q

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
