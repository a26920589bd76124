# Two commands for a fresh clone: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test ui prod screenshots install clean

$(BIN)/spark: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Spark Factory needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/spark

demo: install          ## set up and run the whole factory for the demo site (embedded PostgreSQL)
	$(BIN)/spark demo

test: install          ## set up and run the test suite
	$(BIN)/python -m pytest

ui: install            ## open the Dagster UI on the same database and instance the demo used
	$(BIN)/spark ui

prod: install          ## the production topology (docker-compose.yml's four roles) as processes on this host
	$(BIN)/spark prod

screenshots: install   ## the UI screenshots in docs/screenshots/, from the browser test (needs Debian's chromium)
	SPARK_SCREENSHOTS_DIR=docs/screenshots $(BIN)/python -m pytest -q tests/test_ui_browser.py

clean:
	rm -rf $(VENV) .spark .pytest_cache
