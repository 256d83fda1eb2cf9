# Leadloop: `make run` starts the app, `make test` runs the tests. Both set themselves up
# (virtual environment, dependencies) on a machine that has only Python 3.11.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check --quiet

.PHONY: run test lint bench clean

# Reinstall only when a requirements file changed.
$(VENV)/.installed-run: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing dependencies into $(VENV) ..."
	@$(PIP) install -r requirements.txt
	@touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed-run
	@$(PIP) install -r requirements-dev.txt
	@touch $@

run: $(VENV)/.installed-run
	@$(PY) scripts/run.py

test: $(VENV)/.installed-dev
	@$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	@$(PY) -m ruff check .
	@$(PY) -m ruff format --check .

bench: $(VENV)/.installed-dev
	@for script in bench/*; do [ -x "$$script" ] && $(PY) "$$script"; done; true

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles .run
