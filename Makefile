# Giobba: `make demo` runs it for real on the embedded default; `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
BUF    := npx --yes @bufbuild/buf@1.75.0

.PHONY: setup demo test lint services pytest proto proto-lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP)

demo: setup
	$(BIN)/python scripts/demo.py

# Real test services: redis-server (apt-installed when missing and root) and the FerretDB
# MongoDB-wire harness (built once with Go, cached in ~/.cache/giobba).
services:
	PYTHON=$(BIN)/python bash scripts/ci-services.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

pytest: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: setup services lint pytest

proto-lint:
	$(BUF) lint

# Regenerate every language's stubs from protos/ (Python into giobba_client/_gen).
proto: setup proto-lint
	PATH="$(CURDIR)/$(BIN):$$PATH" PYTHON=$(CURDIR)/$(BIN)/python $(BUF) generate
	$(BIN)/python scripts/fix_gen_imports.py

bench: setup services
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .giobba .mypy_cache .ruff_cache .pytest_cache
