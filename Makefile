# Everything runs from a project-local virtual environment that these targets create.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# A second environment with the lowest supported versions (constraints-min.txt), for test-min.
VENV_MIN ?= .venv-min
STAMP_MIN := $(VENV_MIN)/.installed-stamp
# What depends on the Airflow and client versions: everything but the simulator's own tests and the
# version-independent decision modules, which the first stage already covers.
MIN_TESTS := tests/hooks tests/operators tests/sensors tests/triggers tests/test_get_provider_info.py \
	tests/test_example_dags.py tests/test_example_ab.py tests/test_lifecycle.py tests/test_links.py
PIP_FLAGS ?= -q --disable-pip-version-check

.PHONY: venv test test-min test-e2e demo bench lint format dist clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) -c constraints.txt -e ".[testing,test]"
	touch $(STAMP)

$(STAMP_MIN): pyproject.toml constraints-min.txt
	$(PYTHON) -m venv $(VENV_MIN)
	$(VENV_MIN)/bin/pip install $(PIP_FLAGS) -c constraints-min.txt -e ".[testing,test]"
	touch $(STAMP_MIN)

venv: $(STAMP)

# Processes for the tests outside e2e (pytest-xdist); most of their time is spent waiting on the simulator.
JOBS ?= 3

# The whole suite on the tested versions (the multi-process e2e stacks alone, after the rest), then the
# Airflow-facing tests on the lowest supported ones.
test: venv
	$(BIN)/python -m pytest -m "not e2e" -n $(JOBS)
	$(BIN)/python -m pytest -m e2e
	$(MAKE) test-min

test-min: $(STAMP_MIN)
	$(VENV_MIN)/bin/python -m pytest -m "not e2e" -n $(JOBS) $(MIN_TESTS)

test-e2e: venv
	$(BIN)/python -m pytest -m e2e

# make demo DAG=esml_ab_test runs another example DAG (default: esml_batch_inference)
DAG ?= esml_batch_inference
demo: venv
	$(BIN)/python scripts/demo.py $(DAG)

bench: venv
	$(BIN)/python -m benchmarks

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The sdist and the wheel into dist/, built with the venv's hatchling (no download), then checked.
dist: venv
	rm -rf dist
	$(BIN)/python -m build --no-isolation --sdist --wheel --outdir dist .
	$(BIN)/twine check --strict dist/*

clean:
	rm -rf $(VENV) $(VENV_MIN) .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
