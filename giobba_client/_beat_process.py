"""Heartbeats from a child process, so even a handler holding the GIL cannot starve them.

A thread of the worker is enough while handlers block only the event loop, but a long C
call that holds the GIL (a big `sum()`, a regex backtracking, many C extensions) stops
every thread of the process. The child process has its own interpreter: the worker feeds
it snapshots (identity, counts, leases) over a pipe whenever they change, the child beats
with the latest one and writes cancellations back.

The child must never outlive or out-freeze its worker, or a dead worker's leases would be
renewed forever: it exits on end-of-input (the kernel closes the pipe when the worker dies,
even by SIGKILL) and when the worker process itself has exited (a process a handler forked
may hold the pipe open after the worker died), and on Linux it skips beats while the worker
is stopped (SIGSTOP), so a frozen worker loses its leases as it should. If the child dies,
the worker starts another. Interrupt signals are ignored: the worker
decides when the child stops (after its drain), by saying so, which earns one last beat.

Protocol: worker -> child, one JSON object per line, {"worker": base64 WorkerInfo,
"leases": [[task id, token], ...]}, or {"stop": true}; child -> worker, one JSON object
per line, {"task_id": ..., "reason": ...}.
"""

import base64
import contextlib
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from giobba_client._gen.giobba.v1 import task_pb2 as pb
from giobba_client._heartbeat import Beat, Heartbeater

log = logging.getLogger("giobba.worker")

REFRESH = 1.0  # re-send the snapshot at least this often (counts change without kicks)
PARENT_CHECK = 0.25  # where no pidfd exists: how often to look for a re-parenting


def encode(beat: Beat) -> str:
    worker = base64.b64encode(beat.worker.SerializeToString()).decode()
    return json.dumps({"worker": worker, "leases": [list(lease) for lease in beat.leases]})


def decode(line: str) -> Beat | None:
    """The snapshot in a line, or None for a stop request."""
    data = json.loads(line)
    if data.get("stop"):
        return None
    worker = pb.WorkerInfo.FromString(base64.b64decode(data["worker"]))
    return Beat(worker, [(str(i), str(t)) for i, t in data["leases"]])


class BeatProcess:
    """The worker's side: same surface as `Heartbeater` (start, changed, stop). A child that
    dies while the worker runs (killed, crashed) is started again at once: without it every
    lease would lapse while the worker goes on running, and losing, its tasks."""

    def __init__(
        self, server: str, snapshot: Callable[[], Beat], on_cancel: Callable[[str, str], None]
    ) -> None:
        self._server = server
        self._snapshot = snapshot
        self._on_cancel = on_cancel
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards _child and _threads against a respawn
        self._child: subprocess.Popen[str] | None = None
        self._threads: list[threading.Thread] = []
        self._last_beat = True
        self.restarts = 0

    def start(self) -> None:
        with self._lock:
            self._spawn()

    def _spawn(self) -> None:
        # `-c`, not `-m`: running a module that the package already imported makes Python
        # warn about a double import.
        argv = [sys.executable, "-c", _ENTRY, self._server, str(os.getpid())]
        child = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self._child = child
        for target, name in ((self._feed, "giobba-beat-feed"), (self._read, "giobba-beat-read")):
            thread = threading.Thread(target=target, args=(child,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def changed(self) -> None:
        """Leases or counts changed: send a fresh snapshot now."""
        self._changed.set()

    def stop(self, last_beat: bool = True) -> None:
        """Let the child beat once more (current counts) and exit; or, with
        `last_beat=False`, just close its input so the leases held lapse."""
        self._last_beat = last_beat
        with self._lock:
            self._stop.set()
            threads, child = list(self._threads), self._child
        self._changed.set()
        for thread in threads:
            thread.join(timeout=10)
        if child is not None:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

    def _feed(self, child: "subprocess.Popen[str]") -> None:
        assert child.stdin is not None
        pipe = child.stdin
        last = ""
        with contextlib.suppress(OSError, ValueError):  # the child is gone: nothing to feed
            while not self._stop.is_set() and child.poll() is None:
                line = encode(self._snapshot())
                if line != last:
                    pipe.write(line + "\n")
                    pipe.flush()
                    last = line
                self._changed.wait(REFRESH)
                self._changed.clear()
            if self._last_beat and self._stop.is_set():
                pipe.write(encode(self._snapshot()) + "\n" + json.dumps({"stop": True}) + "\n")
                pipe.flush()
        with contextlib.suppress(OSError, ValueError):
            pipe.close()

    def _read(self, child: "subprocess.Popen[str]") -> None:
        assert child.stdout is not None
        for line in child.stdout:
            with contextlib.suppress(ValueError, KeyError):
                data = json.loads(line)
                self._on_cancel(str(data["task_id"]), str(data["reason"]))
        code = child.wait()
        with self._lock:
            if self._stop.is_set():
                return
            self.restarts += 1
            log.error("heartbeat process exited (%s); starting it again", code)
            self._changed.set()  # wake the old feed thread so it ends
            self._spawn()


# -- the child ---------------------------------------------------------------------------


def parent_running(pid: int) -> bool:
    """False while `pid` is stopped (SIGSTOP, a debugger), judged from /proc on Linux;
    elsewhere there is no cheap way to tell, so the worker counts as running."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("T", "t")


def wait_for_exit(pid: int, gone: Callable[[], None]) -> None:
    """Call `gone` once process `pid` has exited. End-of-input is not enough to tell: a
    process the handler forked inherits the pipe and keeps it open after the worker died.
    A pidfd turns readable when the process exits (Linux >= 5.3); elsewhere a re-parented
    child (getppid changed) is the sign."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = -1
    if fd >= 0:
        with contextlib.closing(selectors.DefaultSelector()) as sel:
            sel.register(fd, selectors.EVENT_READ)
            sel.select()
        os.close(fd)
    else:
        while os.getppid() == pid:
            threading.Event().wait(PARENT_CHECK)
    gone()


class _Child:
    def __init__(self, server: str, parent: int, out: IO[str]) -> None:
        self._parent = parent
        self._out = out
        self._out_lock = threading.Lock()
        self._beat: Beat | None = None
        self._ready = threading.Event()
        self._beats = Heartbeater(server, self._latest, self._cancel, alive=self._alive)

    def _latest(self) -> Beat:
        assert self._beat is not None
        return self._beat

    def _alive(self) -> bool:
        return parent_running(self._parent)

    def _cancel(self, task_id: str, reason: str) -> None:
        with self._out_lock, contextlib.suppress(OSError, ValueError):
            self._out.write(json.dumps({"task_id": task_id, "reason": reason}) + "\n")
            self._out.flush()

    def _orphaned(self) -> None:
        """The worker died (its pipe may live on in a process it forked): stop beating, so
        its leases lapse, and exit without waiting for an end of input that may not come."""
        self._beats.stop(last_beat=False)
        os._exit(0)

    def run(self, lines: IO[str]) -> int:
        """Beat until told to stop (one last beat) or until the worker is gone (none)."""
        if os.getppid() != self._parent:  # the worker died before we got here
            return 0
        watch = threading.Thread(
            target=wait_for_exit, args=(self._parent, self._orphaned), daemon=True
        )
        watch.start()
        for line in lines:
            beat = decode(line)
            if beat is None:
                self._beats.stop()
                return 0
            self._beat = beat
            if not self._ready.is_set():
                self._ready.set()
                self._beats.start()
        self._beats.stop(last_beat=False)  # end of input, no stop: the worker died or quit
        return 0


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when we stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(
        level=os.environ.get("GIOBBA_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    server, parent = argv[0], int(argv[1])
    return _Child(server, parent, sys.stdout).run(sys.stdin)


_ENTRY = "import sys; from giobba_client._beat_process import main; sys.exit(main(sys.argv[1:]))"

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
