# Leadloop: `make run` starts the app, `make test` runs the tests. Both set themselves up
# (virtual environment, dependencies) on a machine that has only Python 3.11.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check --quiet

.PHONY: run test fuzz lint bench clean browser-deps bench-deps lock

# The requirements*.txt files are locks: every package, pinned, with the hashes of its
# files; pip checks each download against them. Reinstall only when a lock changed.
$(VENV)/.installed-run: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing dependencies into $(VENV) ..."
	@$(PIP) install --require-hashes -r requirements.txt
	@touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed-run
	@$(PIP) install --require-hashes -r requirements-dev.txt
	@touch $@

# `make lock`: the one command that writes the locks, after a change to a requirements*.in
# file (the top-level pins). uv resolves for Python 3.11 on every platform and keeps each
# pin the old lock had unless a change needs another; LOCK_ARGS="--upgrade-package NAME"
# (or "--upgrade") moves pins on purpose. The dev lock is held to the runtime one, so both
# install the same versions. See docs/deploy.md.
UV_COMPILE = $(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 \
	--generate-hashes --custom-compile-command "make lock"
lock:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PIP) install --require-hashes -r requirements-uv.txt
	$(UV_COMPILE) $(LOCK_ARGS) requirements-uv.in -o requirements-uv.txt
	$(UV_COMPILE) $(LOCK_ARGS) requirements.in -o requirements.txt
	$(UV_COMPILE) $(LOCK_ARGS) requirements-dev.in --constraints requirements.txt -o requirements-dev.txt

run: $(VENV)/.installed-run
	@$(PY) scripts/run.py

test: $(VENV)/.installed-dev browser-deps
	@$(PY) -m pytest $(PYTEST_ARGS)

# The property tests (Hypothesis) long and random, rather than the fixed examples `make
# test` runs: what a run finds is replayed from .hypothesis/ and belongs in the test as
# an @example. FUZZ_ARGS narrows it, e.g. FUZZ_ARGS="tests/hostile -x".
fuzz: $(VENV)/.installed-dev
	@HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -m hypothesis $(FUZZ_ARGS)

# The browser tests drive Debian's Chromium (never a browser downloaded by Playwright).
# Install it, and a CJK font so Chinese pages render in screenshots, when missing and
# possible (root with apt-get); otherwise the browser tests fail and say why.
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -qq
browser-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  missing=""; \
	  command -v chromium >/dev/null 2>&1 || missing="chromium"; \
	  fc-list :lang=zh 2>/dev/null | grep -q . || missing="$$missing fonts-wqy-microhei"; \
	  if [ -n "$$missing" ]; then \
	    echo "Installing$$missing for the browser tests ..."; \
	    apt-get update -qq && $(APT_INSTALL) $$missing >/dev/null; \
	  fi; \
	fi

lint: $(VENV)/.installed-dev
	@$(PY) -m ruff check .
	@$(PY) -m ruff format --check .

# bench/webhook drives the server with wrk (Debian's package), as SPEC.md says.
bench-deps:
	@if ! command -v wrk >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing wrk for bench/webhook ..."; \
	    apt-get update -qq && $(APT_INSTALL) wrk >/dev/null; \
	  else echo "bench/webhook needs wrk (apt-get install wrk)"; exit 1; fi; \
	fi

bench: $(VENV)/.installed-dev bench-deps
	@$(PY) scripts/bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles .run
