# Two set-up commands for a fresh machine:  make demo  and  make test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint docs install bench clean slurm

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Reinstall when the package metadata changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,lint,docs]'
	@# Worker processes start faster from compiled modules (even where PYTHONDONTWRITEBYTECODE is set).
	$(BIN)/python -m compileall -q src > /dev/null
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/profit run --restart examples/external
	$(BIN)/profit status examples/external

# A second pass without pidfds (PROFIT_EXIT_WATCH=poll, as on a platform that has none): the
# behaviour suite and the crash table (about 30 s more, two xdist workers). Both passes run;
# make fails when either does.
EXIT_WATCH_TESTS := tests/test_behaviour.py tests/test_crashes.py

test: install
	@status=0; \
	$(BIN)/python -m pytest -p no:cacheprovider || status=1; \
	PROFIT_EXIT_WATCH=poll $(BIN)/python -m pytest -p no:cacheprovider $(EXIT_WATCH_TESTS) || status=1; \
	exit $$status

# Style and types: ruff (lint and format) and mypy over the code, as CI runs them.
lint: install
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy

# The documentation site (docs/, Sphinx): HTML in docs/_build/html. Read afresh every time (-E),
# so that every page's warnings show; a warning (-n: also a reference that leads nowhere) fails it.
docs: install
	$(BIN)/sphinx-build -E -q -W --keep-going -n -b html docs docs/_build/html
	@echo "docs/_build/html/index.html"

# A real single-node Slurm cluster on localhost for the Slurm tests (as root, Debian 12).
slurm:
	bash ci/slurm/start.sh

bench: install
	$(BIN)/python benchmarks/bench_runners.py

clean:
	rm -rf $(VENV) build src/*.egg-info docs/_build
