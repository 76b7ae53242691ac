# Two commands on a fresh machine with Python 3.11+:
#   make run    install what running needs into .venv and serve on the embedded defaults
#   make test   install the test tools too, and run the tests, ruff and mypy
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SOURCES := pyproject.toml $(shell find server imagerepo sql -type f -not -name '*.pyc' 2>/dev/null)

.PHONY: run test lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Running needs the package alone; the tests' tools (schemathesis, moto, scikit-image, ...)
# are most of the download, so only `make test` installs them.
$(VENV)/.installed-run: $(PY) $(SOURCES)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(PY) $(SOURCES)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(PY) -m server serve

# The tests run in parallel, one pytest-xdist worker per core (a file's tests stay together;
# each worker has a database of its own), then those marked `serial` alone. Exit status 5
# (nothing selected) is fine for either half when PYTEST_ARGS picks a few tests.
TEST_WORKERS ?= auto
test: $(VENV)/.installed-test
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not serial" --cov --cov-report= \
		$(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(PY) -m pytest -m serial --cov --cov-append --cov-report=term $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(MAKE) lint

lint: $(VENV)/.installed-test
	$(PY) -m ruff check .
	$(PY) -m mypy

# Leaves ./data (the embedded database and the stored images): `rm -rf data` removes them.
clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* build *.egg-info
