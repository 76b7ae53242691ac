# Two commands on a fresh machine with Python 3.11+:
#   make run    install into .venv and serve on the embedded defaults
#   make test   install into .venv (with test tools) and run tests, ruff and mypy
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SOURCES := pyproject.toml $(shell find server sql -type f -not -name '*.pyc' 2>/dev/null)

.PHONY: run test lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(PY) $(SOURCES)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(PY) -m server serve

test: $(VENV)/.installed
	$(PY) -m pytest --cov=server --cov-report=term $(PYTEST_ARGS)
	$(MAKE) lint

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage build *.egg-info
