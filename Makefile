# Two commands for a fresh machine: `make run` and `make test`. Each bootstraps its own .venv.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test

$(VENV)/.runtime: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Bytecode written ahead: with PYTHONDONTWRITEBYTECODE set, every daemon start (the master, then
# its worker) would compile the package from source again.
run: $(VENV)/.runtime
	$(PY) -m compileall -q octyne_flask
	$(PY) -m octyne_flask --config=config.json --users=users.json

test: $(VENV)/.dev
	sh scripts/test-services.sh
	sh scripts/install-browser.sh
	$(PY) -m compileall -q octyne_flask tests
	$(PY) -m pytest -q --durations=25
