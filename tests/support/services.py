"""Real services for tests: a throwaway ``redis-server`` and a MongoDB-wire server.

Both listen on 127.0.0.1 only, on a free port, with their files in a temp dir.
For MongoDB, ``GIOBBA_TEST_MONGO_URL`` names an existing server to use instead;
otherwise FerretDB (SQLite backend) is run through the small Go program in
``tests/services/ferretdb``, built once and cached under ``~/.cache/giobba``.

Run as a script (``python3 tests/support/services.py build-ferretdb``) it only
builds the FerretDB harness and prints the binary's path, so CI can pay the
build before any test timeout starts.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import selectors
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, NoReturn, Self

__all__ = [
    "LOOPBACK",
    "MONGO_URL_ENV",
    "MongoServer",
    "RedisServer",
    "ServiceUnavailableError",
    "TlsRedisServer",
    "build_ferretdb_harness",
    "ferretdb_harness_dir",
    "free_port",
    "require_service",
]

LOOPBACK = "127.0.0.1"
MONGO_URL_ENV = "GIOBBA_TEST_MONGO_URL"

_STOP_TIMEOUT = 10.0
_LOG_TAIL_CHARS = 2000

_ENABLE_HINTS = {
    "redis": "apt-get install -y redis-server (scripts/ci-services.sh does it)",
    "mongo": (
        f"install Go >= 1.24 so the FerretDB harness can be built (or run scripts/ci-services.sh), "
        f"or set {MONGO_URL_ENV} to a MongoDB server's URL"
    ),
}


class ServiceUnavailableError(Exception):
    """A real service could not be started (missing binary, failed build, no readiness)."""


def require_service(name: str, reason: str) -> NoReturn:
    """Fail a test that needs service ``name`` when it cannot be started.

    Never a skip: a missing service must not turn into a green run. ``make test``
    (and ``.ci/run``) install what the services need.
    """
    # Imported here so that the build-ferretdb entry point runs without pytest.
    import pytest  # noqa: PLC0415

    hint = _ENABLE_HINTS.get(name, f"make {name} available")
    pytest.fail(f"{name} unavailable ({reason}); to enable: {hint}", pytrace=False)


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that was free on ``host`` a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


# --- process helpers ---------------------------------------------------------


_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., object] | None:
    # Resolved in the parent so that the forked child does no dlopen (loader locks).
    if sys.platform != "linux":
        return None
    try:
        prctl: Callable[..., object] = ctypes.CDLL(None, use_errno=True).prctl
        return prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the starting thread dies, so no server outlives pytest."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _spawn(
    argv: list[str], *, cwd: Path, stdout: int | IO[bytes], stderr: IO[bytes]
) -> subprocess.Popen[bytes]:
    # PR_SET_PDEATHSIG fires when the *thread* that forked exits, so only arm it
    # from the main thread, whose end is the end of the test run.
    in_main = threading.current_thread() is threading.main_thread()
    try:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            # The hook only calls prctl, resolved beforehand, so it is fork-safe enough.
            preexec_fn=_die_with_parent if in_main and _PRCTL is not None else None,  # noqa: PLW1509
        )
    except OSError as exc:
        raise ServiceUnavailableError(f"cannot run {argv[0]}: {exc}") from exc


def _terminate(proc: subprocess.Popen[bytes], *, graceful: bool) -> None:
    if proc.poll() is None:
        if graceful:
            proc.terminate()
            try:
                proc.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
        else:
            proc.kill()
    proc.wait()


def _log_tail(path: Path) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-_LOG_TAIL_CHARS:].strip()


def _backoff(attempt: int) -> float:
    """Pause between readiness probes: 5 ms doubling up to 50 ms."""
    return float(min(0.005 * 2**attempt, 0.05))


# --- Redis -------------------------------------------------------------------


def _redis_command(
    host: str,
    port: int,
    *args: str,
    timeout: float = 2.0,
    tls: ssl.SSLContext | None = None,
) -> bytes:
    """Send one RESP command on a fresh connection; return the first reply line."""
    payload = f"*{len(args)}\r\n".encode()
    for arg in args:
        data = arg.encode()
        payload += b"$%d\r\n%s\r\n" % (len(data), data)
    with socket.create_connection((host, port), timeout=timeout) as raw:
        sock = tls.wrap_socket(raw, server_hostname=host) if tls is not None else raw
        sock.sendall(payload)
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.strip()


class RedisServer:
    """A ``redis-server`` on 127.0.0.1 with no persistence, in its own temp dir.

    ``start()`` picks a free port the first time; ``stop()``/``start()`` and
    ``restart()`` keep that port, and every start begins with no data.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        executable: str | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        self._port = port
        self._executable = executable
        self._startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: Path | None = None

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("RedisServer has not been started yet")
        return self._port

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server and return once it answers PING; a no-op if running."""
        if self.is_running:
            return
        executable = self._executable or shutil.which("redis-server")
        if executable is None:
            raise ServiceUnavailableError("redis-server not found on PATH")
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="giobba-redis-"))
        # A port picked by us may be taken before redis binds it: retry with another.
        pick = self._port is None
        for attempt in range(3):
            if pick:
                self._port = free_port()
            try:
                self._start_once(executable, self._tmp)
                return
            except ServiceUnavailableError:
                if not pick or attempt == 2:
                    raise

    def _argv(self, executable: str, port: int, tmp: Path) -> list[str]:
        return [
            executable,
            "--port", str(port),
            "--bind", LOOPBACK,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(tmp),
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", "",
        ]  # fmt: skip

    def _answers(self, port: int) -> bool:
        return _redis_command(LOOPBACK, port, "PING", timeout=1.0) == b"+PONG"

    def _start_once(self, executable: str, tmp: Path) -> None:
        port = self.port
        log = tmp / "redis.log"
        argv = self._argv(executable, port, tmp)
        with log.open("ab") as out:
            self._proc = _spawn(argv, cwd=tmp, stdout=out, stderr=out)
        deadline = time.monotonic() + self._startup_timeout
        attempt = 0
        while True:
            if self._proc.poll() is not None:
                self._proc = None
                raise ServiceUnavailableError(
                    f"redis-server exited on port {port}: {_log_tail(log)}"
                )
            with contextlib.suppress(OSError):
                if self._answers(port):
                    return
            if time.monotonic() > deadline:
                _terminate(self._proc, graceful=False)
                self._proc = None
                raise ServiceUnavailableError(
                    f"redis-server did not answer PING within {self._startup_timeout}s: "
                    + _log_tail(log)
                )
            time.sleep(_backoff(attempt))
            attempt += 1

    def stop(self, *, graceful: bool = True) -> None:
        """Stop the server (SIGTERM, or SIGKILL when not graceful); keeps the port."""
        if self._proc is not None:
            _terminate(self._proc, graceful=graceful)
            self._proc = None

    def restart(self) -> None:
        """Stop and start again on the same port, with empty data."""
        self.stop()
        self.start()

    def flushall(self) -> None:
        reply = _redis_command(LOOPBACK, self.port, "FLUSHALL")
        if reply != b"+OK":
            raise RuntimeError(f"FLUSHALL answered {reply!r}")

    def close(self) -> None:
        """Stop the server and remove its temp dir."""
        self.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class TlsRedisServer(RedisServer):
    """A ``redis-server`` that speaks TLS only and knows one ACL user (no default user).

    The certificate is self-signed for 127.0.0.1, made with ``openssl`` in the temp dir;
    ``ca_file`` is what a client must trust.
    """

    def __init__(self, *, username: str, password: str, startup_timeout: float = 10.0) -> None:
        super().__init__(startup_timeout=startup_timeout)
        self.username = username
        self.password = password
        self._ca: Path | None = None

    @property
    def url(self) -> str:
        return f"rediss://{LOOPBACK}:{self.port}/0"

    @property
    def ca_file(self) -> Path:
        if self._ca is None:
            raise RuntimeError("TlsRedisServer has not been started yet")
        return self._ca

    def _certificate(self, tmp: Path) -> tuple[Path, Path]:
        cert, key = tmp / "cert.pem", tmp / "key.pem"
        if not cert.exists():
            openssl = shutil.which("openssl")
            if openssl is None:
                raise ServiceUnavailableError("openssl not found on PATH (apt-get install openssl)")
            subprocess.run(
                [
                    openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={LOOPBACK}",
                    "-addext", f"subjectAltName=IP:{LOOPBACK}",
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )  # fmt: skip
        self._ca = cert
        return cert, key

    def _argv(self, executable: str, port: int, tmp: Path) -> list[str]:
        cert, key = self._certificate(tmp)
        argv = super()._argv(executable, port, tmp)
        argv[argv.index("--port") + 1] = "0"  # no plain-TCP listener at all
        return [
            *argv,
            "--tls-port", str(port),
            "--tls-cert-file", str(cert),
            "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(cert),
            "--tls-auth-clients", "no",
            "--user", "default", "off",
            "--user", self.username, "on", f">{self.password}", "~*", "&*", "+@all",
        ]  # fmt: skip

    def _answers(self, port: int) -> bool:
        tls = ssl.create_default_context(cafile=str(self.ca_file))
        reply = _redis_command(LOOPBACK, port, "PING", timeout=1.0, tls=tls)
        return reply.startswith(b"-NOAUTH")  # up, and refusing anyone unauthenticated


# --- FerretDB harness build ----------------------------------------------------

_HARNESS_SOURCES = ("go.mod", "go.sum", "main.go")
_FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
# FerretDB v1.24's SQLite backend looks `_id` up as `_ferretdb_sjson->'$._id'` while its
# unique `_id` index is on `_ferretdb_sjson->"_id"`: SQLite cannot match the two, so every
# `_id` lookup and every update scans the whole collection (seconds per write at 10k
# documents). The build patches the lookup to the index's own expression.
_FERRETDB_PATCH = (
    "internal/backends/sqlite/metadata/metadata.go",
    "IDColumn = DefaultColumn + \"->'$._id'\"",
    'IDColumn = DefaultColumn + `->"_id"`',
)


def ferretdb_harness_dir() -> Path:
    """The Go module with the FerretDB harness (``tests/services/ferretdb``)."""
    return Path(__file__).resolve().parent.parent / "services" / "ferretdb"


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "giobba"


def _harness_binary_path() -> Path:
    digest = hashlib.sha256()
    src = ferretdb_harness_dir()
    for name in _HARNESS_SOURCES:
        digest.update(name.encode() + b"\0" + (src / name).read_bytes() + b"\0")
    digest.update(repr(_FERRETDB_PATCH).encode())
    return _cache_dir() / f"ferretdb-harness-{digest.hexdigest()[:16]}"


def _find_go() -> str | None:
    found = shutil.which("go")
    if found is not None:
        return found
    fallback = Path("/usr/local/go/bin/go")
    return str(fallback) if fallback.is_file() else None


def _patched_sources(go: str, env: dict[str, str], tmp: Path, timeout: float) -> Path:
    """Copy the harness and FerretDB's module into `tmp`, patch FerretDB, and point the
    harness at the patched copy with a `replace`; returns the harness build directory."""
    download = subprocess.run(
        [go, "mod", "download", "-json", _FERRETDB_MODULE],
        cwd=ferretdb_harness_dir(),
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if download.returncode != 0:
        tail = (download.stdout + download.stderr)[-_LOG_TAIL_CHARS:]
        raise ServiceUnavailableError(f"downloading FerretDB failed: {tail}")
    module = tmp / "ferretdb"
    shutil.copytree(json.loads(download.stdout)["Dir"], module)
    for path in module.rglob("*"):
        path.chmod(path.stat().st_mode | 0o200)  # the module cache is read-only
    target = module / _FERRETDB_PATCH[0]
    text = target.read_text()
    if _FERRETDB_PATCH[1] not in text:
        raise ServiceUnavailableError(f"FerretDB patch no longer applies to {target.name}")
    target.write_text(text.replace(_FERRETDB_PATCH[1], _FERRETDB_PATCH[2]))
    harness = tmp / "harness"
    harness.mkdir()
    for name in _HARNESS_SOURCES:
        shutil.copy(ferretdb_harness_dir() / name, harness / name)
    with (harness / "go.mod").open("a") as mod:
        mod.write(f"\nreplace {_FERRETDB_MODULE} => ../ferretdb\n")
    return harness


def build_ferretdb_harness(*, timeout: float = 900.0) -> Path:
    """Return the cached harness binary, building it first if the sources changed.

    Safe to call from concurrent processes: one builds while the others wait.
    """
    target = _harness_binary_path()
    if target.is_file():
        return target
    go = _find_go()
    if go is None:
        raise ServiceUnavailableError(
            "Go toolchain ('go') not found, needed to build the FerretDB harness"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / "ferretdb-harness.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_file():  # another process built it while we waited
            return target
        tmp_out = target.with_name(f"{target.name}.tmp{os.getpid()}")
        env = {
            **os.environ,
            "CGO_ENABLED": "0",  # modernc SQLite is pure Go: no C compiler needed
            "GOTOOLCHAIN": "local",  # never fetch another toolchain
            "GOFLAGS": "-mod=readonly -buildvcs=false",  # go.sum is committed; don't touch it
        }
        try:
            with tempfile.TemporaryDirectory(prefix="giobba-ferretdb-build-") as tmp:
                build_dir = _patched_sources(go, env, Path(tmp), timeout)
                result = subprocess.run(
                    [go, "build", "-trimpath", "-o", str(tmp_out), "."],
                    cwd=build_dir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    check=False,
                )
        except subprocess.TimeoutExpired as exc:
            tmp_out.unlink(missing_ok=True)
            raise ServiceUnavailableError(
                f"building the FerretDB harness took over {timeout}s"
            ) from exc
        if result.returncode != 0:
            tmp_out.unlink(missing_ok=True)
            output = (result.stdout + result.stderr)[-_LOG_TAIL_CHARS:]
            raise ServiceUnavailableError(f"building the FerretDB harness failed: {output}")
        os.replace(tmp_out, target)
    return target


# --- MongoDB -------------------------------------------------------------------


class MongoServer:
    """A MongoDB-wire server: ``GIOBBA_TEST_MONGO_URL`` if set, else local FerretDB.

    The local FerretDB keeps its port and data dir across ``stop()``/``start()``,
    so a test can take "MongoDB" away and bring it back with its data.
    An external server can't be stopped: check ``can_stop`` first.
    Tests should each use their own database, from ``database_name()``.
    """

    def __init__(
        self,
        *,
        external_url: str | None = None,
        use_env: bool = True,
        port: int | None = None,
        startup_timeout: float = 30.0,
        build_timeout: float = 900.0,
    ) -> None:
        if external_url is None and use_env:
            external_url = os.environ.get(MONGO_URL_ENV) or None
        self._external_url = external_url
        self._port = port
        self._startup_timeout = startup_timeout
        self._build_timeout = build_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: Path | None = None

    @property
    def is_external(self) -> bool:
        return self._external_url is not None

    @property
    def can_stop(self) -> bool:
        return not self.is_external

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("MongoServer has no local port (external, or not started)")
        return self._port

    @property
    def url(self) -> str:
        if self._external_url is not None:
            return self._external_url
        return f"mongodb://{LOOPBACK}:{self.port}/"

    @property
    def data_dir(self) -> Path | None:
        """FerretDB's SQLite directory (None for an external server)."""
        return None if self._tmp is None else self._tmp / "data"

    @property
    def is_running(self) -> bool:
        if self.is_external:
            return True
        return self._proc is not None and self._proc.poll() is None

    @staticmethod
    def database_name(prefix: str = "giobba_test") -> str:
        """A database name no other test uses (MongoDB caps names at 63 bytes)."""
        return f"{prefix}_{uuid.uuid4().hex[:12]}"

    def start(self) -> None:
        """Start (or, for an external URL, check) the server; a no-op if running."""
        if self._external_url is not None:
            self._check_external(self._external_url)
            return
        if self.is_running:
            return
        binary = build_ferretdb_harness(timeout=self._build_timeout)
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="giobba-ferretdb-"))
        pick = self._port is None
        for attempt in range(3):
            if pick:
                self._port = free_port()
            try:
                self._start_once(binary, self._tmp)
                return
            except ServiceUnavailableError:
                if not pick or attempt == 2:
                    raise

    def _check_external(self, url: str) -> None:
        # Imported here so that the build-ferretdb entry point needs only the stdlib.
        import pymongo  # noqa: PLC0415
        from pymongo.errors import PyMongoError  # noqa: PLC0415

        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
            url, serverSelectionTimeoutMS=int(min(self._startup_timeout, 10.0) * 1000)
        )
        try:
            client.admin.command("ping")
        except PyMongoError as exc:
            raise ServiceUnavailableError(
                f"{MONGO_URL_ENV} server did not answer ping: {exc}"
            ) from exc
        finally:
            client.close()

    def _start_once(self, binary: Path, tmp: Path) -> None:
        port = self.port
        log = tmp / "ferretdb.log"
        argv = [str(binary), "-listen", f"{LOOPBACK}:{port}", "-dir", str(tmp / "data")]
        with log.open("ab") as err:
            proc = _spawn(argv, cwd=tmp, stdout=subprocess.PIPE, stderr=err)
        self._proc = proc
        try:
            ready = self._await_ready(proc)
        except BaseException:
            _terminate(proc, graceful=False)
            self._proc = None
            raise
        if not ready:
            _terminate(proc, graceful=False)
            self._proc = None
            raise ServiceUnavailableError(
                f"FerretDB harness not ready on port {port} within {self._startup_timeout}s: "
                + _log_tail(log)
            )

    def _await_ready(self, proc: subprocess.Popen[bytes]) -> bool:
        """Wait for the harness's READY line, then for a TCP connect, up to the deadline."""
        assert proc.stdout is not None
        deadline = time.monotonic() + self._startup_timeout
        seen = b""
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while b"\n" not in seen:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not sel.select(remaining):
                    return False
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:  # EOF: the harness exited
                    log = self._tmp / "ferretdb.log" if self._tmp else Path()
                    raise ServiceUnavailableError(
                        f"FerretDB harness exited at startup: {_log_tail(log)}"
                    )
                seen += chunk
        if not seen.startswith(b"READY "):
            return False
        # The listener is bound before READY; a connect confirms it from our side.
        attempt = 0
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection((LOOPBACK, self.port), timeout=1.0),
            ):
                return True
            time.sleep(_backoff(attempt))
            attempt += 1
        return False

    def stop(self, *, graceful: bool = True) -> None:
        """Stop FerretDB, keeping port and data for ``start()``; SIGKILL if not graceful."""
        if self._external_url is not None:
            raise RuntimeError("cannot stop an external MongoDB server (check can_stop)")
        if self._proc is not None:
            _terminate(self._proc, graceful=graceful)
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None

    def close(self) -> None:
        """Stop the server and remove its temp dir (data included)."""
        if self._external_url is None:
            self.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _main(argv: list[str]) -> int:
    if argv != ["build-ferretdb"]:
        print("usage: services.py build-ferretdb", file=sys.stderr)
        return 2
    try:
        print(build_ferretdb_harness())
    except ServiceUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
