#!/usr/bin/env bash
# Make the real test services available; idempotent, safe to run on every CI run.
#
#  - installs redis-server from Debian if it is missing (needs root, as on CI);
#  - builds the FerretDB harness (tests/services/ferretdb) into ~/.cache/giobba,
#    so that the first MongoDB test does not pay a ~1 min build inside its timeout.
#
# Skip the FerretDB build with GIOBBA_TEST_MONGO_URL set (an external server is used).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf 'ci-services: %s\n' "$*" >&2; }

ensure_redis() {
    if command -v redis-server >/dev/null 2>&1; then
        log "redis-server present: $(redis-server --version | head -n1)"
        return
    fi
    if [ "$(id -u)" -ne 0 ]; then
        log "redis-server missing and not root: install it with 'apt-get install -y redis-server'"
        return 1
    fi
    log "installing redis-server"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends redis-server
    # The tests start their own servers on free ports: the packaged daemon on
    # 6379 is not needed, so stop it if the package's scripts started it.
    if command -v service >/dev/null 2>&1; then
        service redis-server stop >/dev/null 2>&1 || true
    fi
    log "installed: $(redis-server --version | head -n1)"
}

find_go() {
    if command -v go >/dev/null 2>&1; then
        command -v go
    elif [ -x /usr/local/go/bin/go ]; then
        echo /usr/local/go/bin/go
    else
        return 1
    fi
}

build_ferretdb() {
    if [ -n "${GIOBBA_TEST_MONGO_URL:-}" ]; then
        log "GIOBBA_TEST_MONGO_URL is set: not building the FerretDB harness"
        return
    fi
    local go
    if ! go="$(find_go)"; then
        log "Go toolchain not found: cannot build the FerretDB harness"
        return 1
    fi
    # services.py picks up 'go' from PATH (or /usr/local/go/bin).
    PATH="$(dirname "$go"):$PATH"
    export PATH
    log "FerretDB harness: $("$go" version)"
    local start=$SECONDS binary
    # services.py owns the cache key and build flags; it needs only the stdlib.
    binary="$(python3 "$repo_root/tests/support/services.py" build-ferretdb)"
    log "FerretDB harness ready in $((SECONDS - start))s: $binary"
}

ensure_redis
build_ferretdb
