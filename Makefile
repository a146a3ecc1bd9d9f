# kabarfeed — `make run` runs the main job on the embedded defaults,
# `make test` runs the whole test suite. Both build .venv themselves.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-sqlite test-postgres lint typecheck bench clean system-deps

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/kabarfeed --config config.toml ingest

# System packages the tests need (Chromium, PostgreSQL, Postfix's smtp-sink);
# installed only when missing, so a warm machine pays nothing.
system-deps:
	bash scripts/system-deps.sh

test: $(STAMP) system-deps lint typecheck
	bash scripts/test.sh

test-sqlite: $(STAMP)
	$(BIN)/pytest -q

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

clean:
	rm -rf $(VENV) var public test-artifacts .pytest_cache .mypy_cache .ruff_cache
