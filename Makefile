# Giobba: `make demo` runs it for real on the embedded default; `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
BUF    := npx --yes @bufbuild/buf@1.75.0
GO     ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
NPM    ?= npm
TOOLS  := $(CURDIR)/.tools/bin
# Code generators for Go, from the Go module proxy (`go install`, no downloaded binaries).
PROTOC_GEN_GO      := v1.36.12
PROTOC_GEN_GO_GRPC := v1.6.2
GO_TOOLS := .tools/stamp-go-$(PROTOC_GEN_GO)-$(PROTOC_GEN_GO_GRPC)
NODE_DEPS := workers/node/node_modules/.installed

.PHONY: setup demo test lint services pytest proto proto-lint proto-breaking bench clean \
	go-tools node-deps workers go-worker node-worker workers-check bench-workers

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

test: setup services lint proto-breaking workers-check pytest

proto-lint:
	$(BUF) lint

# Fails when protos/ breaks the wire format of main (or of the previous commit, on main).
proto-breaking:
	BUF="$(BUF)" bash scripts/proto-breaking.sh

$(GO_TOOLS):
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO)
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC)
	@rm -f .tools/stamp-go-* && touch $@

go-tools: $(GO_TOOLS)

# TypeScript toolchain and runtime deps (protoc-gen-es, tsc, Connect-ES), from the lock file.
$(NODE_DEPS): workers/node/package-lock.json
	cd workers/node && $(NPM) ci --no-audit --no-fund
	@touch $@

node-deps: $(NODE_DEPS)

# The Go and Node workers the conformance kit runs (Go modules and npm packages come from
# their registries on a fresh machine).
go-worker:
	cd workers/go && $(GO) build -o bin/ ./cmd/...

node-worker: $(NODE_DEPS)
	cd workers/node && $(NPM) run --silent build

workers: go-worker node-worker

# go vet + go test for the Go module, node --test for the Node package.
workers-check: workers
	cd workers/go && $(GO) vet ./... && $(GO) test ./...
	cd workers/node && $(NPM) test --silent

# Regenerate every language's stubs from protos/: Python into giobba_client/_gen, Go into
# workers/go/gen, TypeScript into workers/node/src/gen.
proto: setup proto-lint go-tools node-deps
	PATH="$(CURDIR)/$(BIN):$$PATH" PYTHON=$(CURDIR)/$(BIN)/python $(BUF) generate
	$(BIN)/python scripts/fix_gen_imports.py

bench: setup services
	$(BIN)/python bench/run.py

# No-op throughput of the Python, Go and Node workers (same drain for each).
bench-workers: setup workers
	$(BIN)/python bench/workers.py

clean:
	rm -rf $(VENV) .giobba .mypy_cache .ruff_cache .pytest_cache .tools \
		workers/go/bin workers/node/node_modules workers/node/dist
