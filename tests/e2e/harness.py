"""Real processes on loopback: `giobba serve` and `giobba worker`, driven through gRPC.

Each test gets its own server (free port, temp SQLite file, or Redis/MongoDB URLs) and
workers started with the real CLI, so what is tested is what users run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

from giobba_client import Client
from tests.support.services import free_port

REPO = Path(__file__).resolve().parents[2]
HANDLERS = REPO / "workers" / "python" / "handlers.py"
RECORDING = Path(__file__).resolve().parent / "apps" / "recording.py"
T = TypeVar("T")

# Short timings so tests that exercise retries and leases run in seconds.
FAST_CONFIG = """\
lockDuration: 3s
pollingTimeout: 30s
retry:
  base: 100ms
  cap: 1s
"""


def wait_until(
    predicate: Callable[[], T], timeout: float = 15.0, interval: float = 0.02, what: str = ""
) -> T:
    """Poll `predicate` until it returns something truthy, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        threading.Event().wait(interval)


class Proc:
    """A child process whose output is collected, for assertions and for failure reports."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out: IO[bytes] = log.open("wb")
        self.popen = subprocess.Popen(
            argv, env=env, stdout=self._out, stderr=subprocess.STDOUT, cwd=REPO
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_line(self, needle: str, timeout: float = 30.0) -> None:
        def seen() -> bool:
            if self.popen.poll() is not None:
                raise AssertionError(f"process exited ({self.popen.returncode}):\n{self.text()}")
            return needle in self.text()

        wait_until(seen, timeout, what=f"{needle!r} in {self.log.name}")

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def stop(self, timeout: float = 20.0) -> int:
        self.signal(signal.SIGTERM)
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            code = self.popen.wait()
        self._out.close()
        return code

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()
        self._out.close()


@dataclass
class Stack:
    """One server (restartable on the same storage) and any number of workers."""

    tmp: Path
    env: dict[str, str]
    port: int = 0
    server: Proc | None = None
    workers: list[Proc] = field(default_factory=list)
    _client: Client | None = None
    _count: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _log(self, kind: str) -> Path:
        self._count += 1
        return self.tmp / f"{self._count:02d}-{kind}.log"

    def cli_argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "giobba_client.cli.main", "--server", self.address, *args]

    def start_server(self) -> Proc:
        self.port = self.port or free_port()
        argv = self.cli_argv("serve", "--listen", self.address, "--config", str(self.config))
        self.server = Proc(argv, self.env, self._log("server"))
        self.server.wait_for_line("giobba server listening on")
        return self.server

    def stop_server(self) -> None:
        if self.server is not None:
            code = self.server.stop()
            assert code == 0, f"server exited {code}:\n{self.server.text()}"
            self.server = None

    @property
    def config(self) -> Path:
        return self.tmp / "giobba.yml"

    def start_worker(
        self,
        app: Path = HANDLERS,
        queues: str = "default",
        concurrency: int = 1,
        *extra: str,
    ) -> Proc:
        argv = self.cli_argv(
            "worker", "--app", str(app), "--queues", queues, "--concurrency", str(concurrency),
            *extra,
        )  # fmt: skip
        worker = Proc(argv, self.env, self._log("worker"))
        worker.wait_for_line("serving")
        self.workers.append(worker)
        # Registered with the server once its first heartbeat or lease call landed.
        return worker

    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.address, timeout=30)
        return self._client

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.cli_argv(*args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
            check=False,
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        for worker in self.workers:
            worker.kill()
        if self.server is not None:
            self.server.kill()

    def logs(self) -> str:
        parts = [
            f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in self.tmp.glob("*.log")
        ]
        return "\n".join(sorted(parts))


@contextlib.contextmanager
def stack(
    tmp: Path, database_url: str = "", broker_url: str = "", config: str = FAST_CONFIG
) -> Iterator[Stack]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIOBBA_")}
    env["GIOBBA_DATABASE_URL"] = database_url or f"sqlite:///{tmp / 'giobba.db'}"
    if broker_url:
        env["GIOBBA_BROKER_URL"] = broker_url
    env["GIOBBA_TEST_RECORD"] = str(tmp / "executions.log")
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(REPO)
    st = Stack(tmp, env)
    st.config.write_text(config)
    try:
        yield st
    except BaseException:
        print(st.logs(), file=sys.stderr)
        raise
    finally:
        st.close()


def executions(st: Stack) -> list[str]:
    """Task ids in the order the recording app ran them (one line per run)."""
    path = Path(st.env["GIOBBA_TEST_RECORD"])
    if not path.exists():
        return []
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
