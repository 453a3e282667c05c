"""The conformance kit's view of a worker implementation: the command that starts it.

Every implementation takes the same flags after its command: `--server HOST:PORT`,
`--queues A,B`, `--concurrency N`, `--drain SECONDS`, serves the reference handlers
(`echo`, `sleep`, `fail`, `noop`), prints a line containing "serving" once it runs, and on
SIGTERM stops leasing, drains, hands unfinished tasks back and exits 0.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import Callable

from tests.e2e.harness import HANDLERS, REPO, Proc, Stack

GO_BIN = REPO / "workers" / "go" / "bin"
NODE_DIST = REPO / "workers" / "node" / "dist"

# The command that starts each implementation, given the server address.
WORKERS: dict[str, Callable[[str], list[str]]] = {
    "python": lambda server: [
        sys.executable, "-m", "giobba_client.cli.main", "--server", server,
        "worker", "--app", str(HANDLERS),
    ],
    "go": lambda server: [str(GO_BIN / "giobba-worker"), "--server", server],
    "node": lambda server: ["node", str(NODE_DIST / "worker.js"), "--server", server],
}  # fmt: skip
IMPLEMENTATIONS = list(WORKERS)
_count = itertools.count(1)


def toolchain_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{env.get('PATH', '')}{os.pathsep}/usr/local/go/bin"
    return env


def build_workers() -> None:
    """Build the Go binaries and the Node package (`make workers`): Go modules and npm
    packages come from their registries. A missing toolchain fails the suite."""
    env = toolchain_env()
    tools = ("go", "node", "npm", "make")
    missing = [tool for tool in tools if not shutil.which(tool, path=env["PATH"])]
    if missing:
        raise RuntimeError(f"conformance kit needs {', '.join(missing)} on PATH")
    done = subprocess.run(
        ["make", "-s", "workers"], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"make workers failed:\n{done.stdout}\n{done.stderr}")


def start_worker(
    st: Stack, impl: str, queues: str = "default", concurrency: int = 1, drain: float = 30.0
) -> Proc:
    """Start one worker of `impl` on `st`'s server; returns once it says it is serving."""
    argv = [
        *WORKERS[impl](st.address),
        "--queues", queues, "--concurrency", str(concurrency), "--drain", f"{drain:g}",
    ]  # fmt: skip
    log = st.tmp / f"w{next(_count):03d}-{impl}.log"
    worker = Proc(argv, toolchain_env() | _stack_env(st), log)
    st.workers.append(worker)
    worker.wait_for_line("serving")
    return worker


def _stack_env(st: Stack) -> dict[str, str]:
    return {k: v for k, v in st.env.items() if k.startswith(("GIOBBA_", "PYTHON"))}


def go_get(st: Stack, task_id: str) -> str:
    """The task as a Go program reads it (`giobba-get`: payload and result decoded into Go
    values and encoded again), as JSON text."""
    done = subprocess.run(
        [str(GO_BIN / "giobba-get"), "-server", st.address, task_id],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout


def node_submit(st: Stack, lines: list[str]) -> list[str]:
    """Submit tasks with the TypeScript client (`submit.js`: one JSON task per line)."""
    done = subprocess.run(
        ["node", str(NODE_DIST / "submit.js"), "--server", st.address],
        input="\n".join(lines), capture_output=True, text=True, timeout=120,
        env=toolchain_env(), check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.split()
