# kabarfeed — `make run` runs the service on the embedded defaults (Ctrl-C stops it),
# `make test` runs the whole test suite. Both build .venv themselves.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-test
RUNSTAMP := $(VENV)/.installed-run

.PHONY: run test test-sqlite lint typecheck bench clean system-deps

$(VENV)/bin/python:
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# `make run` needs only the package; `make test` adds the test tools.
$(RUNSTAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e .
	touch $(RUNSTAMP)

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP) $(RUNSTAMP)

# The service in the foreground: feeds, pages and digests until Ctrl-C.
run: $(RUNSTAMP)
	$(BIN)/kabarfeed --config config.toml run

# System packages the tests need (Chromium, PostgreSQL, Postfix's smtp-sink);
# installed only when missing, so a warm machine pays nothing.
system-deps:
	bash scripts/system-deps.sh

test: $(STAMP) system-deps lint typecheck
	bash scripts/test.sh

test-sqlite: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/feeds.py
	$(BIN)/python bench/render.py
	$(BIN)/python bench/send.py
	$(BIN)/python bench/web.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/push.py

clean:
	rm -rf $(VENV) var public test-artifacts .pytest_cache .mypy_cache .ruff_cache
