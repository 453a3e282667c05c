"""The worker's heartbeat and cancel stream, each on a thread and a channel of its own.

Leases must be renewed whatever the handlers do: a handler that blocks the event loop or
holds the GIL in a long C call must not starve renewal, so heartbeats never share the
worker's event loop (the GIL is released while the thread waits on the network).
"""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from giobba_client._gen.giobba.v1 import task_pb2 as pb
from giobba_client._gen.giobba.v1 import worker_service_pb2 as ws
from giobba_client._gen.giobba.v1 import worker_service_pb2_grpc as ws_grpc
from giobba_client.aio import CHANNEL_OPTIONS

log = logging.getLogger("giobba.worker")

REASONS = {
    ws.CANCEL_REASON_KILLED: "killed",
    ws.CANCEL_REASON_TIMEOUT: "timeout",
    ws.CANCEL_REASON_LEASE_LOST: "lease lost",
}
FIRST_INTERVAL = 1.0  # until the server says how often it wants to hear from us
MAX_BACKOFF = 5.0


@dataclass(frozen=True)
class Beat:
    """What the runtime reports: its identity and the leases it holds right now."""

    worker: pb.WorkerInfo
    leases: list[tuple[str, str]]


def _always() -> bool:
    return True


class Heartbeater:
    """Beats on a thread of its own. `alive` says whether beating is honest right now (the
    heartbeat process uses it to stay silent while its worker is frozen)."""

    def __init__(
        self,
        server: str,
        snapshot: Callable[[], Beat],
        on_cancel: Callable[[str, str], None],
        alive: Callable[[], bool] = _always,
    ) -> None:
        self._server = server
        self._snapshot = snapshot
        self._on_cancel = on_cancel
        self._alive = alive
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._last_beat = True
        self._thread = threading.Thread(target=self._run, name="giobba-heartbeat", daemon=True)
        self.interval = FIRST_INTERVAL

    def start(self) -> None:
        self._thread.start()

    def kick(self) -> None:
        """Beat now, not at the next interval."""
        self._kick.set()

    def changed(self) -> None:
        """Leases changed: nothing to do, every beat takes a fresh snapshot."""

    def stop(self, last_beat: bool = True) -> None:
        """Stop after one last beat, so the slot counts the server shows are current; or
        without it (`last_beat=False`) when the leases held must lapse, not be renewed."""
        self._last_beat = last_beat
        self._stop.set()
        self._kick.set()
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        channel = grpc.insecure_channel(self._server, options=CHANNEL_OPTIONS)
        stub = ws_grpc.WorkerServiceStub(channel)
        delay = self.interval
        try:
            while not self._stop.is_set():
                delay = self._beat_once(stub, delay) if self._alive() else FIRST_INTERVAL / 4
                self._kick.wait(delay)
                self._kick.clear()
            if self._last_beat:
                self._beat_once(stub, delay)
        finally:
            channel.close()

    def _beat_once(self, stub: ws_grpc.WorkerServiceStub, delay: float) -> float:
        beat = self._snapshot()
        request = ws.HeartbeatRequest(
            worker=beat.worker,
            leases=[ws.Lease(task_id=i, lease_token=t) for i, t in beat.leases],
        )
        try:
            reply = stub.Heartbeat(request, timeout=max(self.interval, 5.0))
        except grpc.RpcError as exc:
            log.warning("heartbeat failed: %s", exc.code().name)
            return min(max(delay * 2, FIRST_INTERVAL), MAX_BACKOFF)
        if reply.HasField("heartbeat_interval"):
            self.interval = max(reply.heartbeat_interval.ToTimedelta().total_seconds(), 0.05)
        for cancel in reply.cancellations:
            self._on_cancel(cancel.task_id, REASONS.get(cancel.reason, "cancelled"))
        return self.interval


class CancelWatcher:
    """Keeps `WatchCancellations` open on a thread of its own, so a kill stops the handler
    within about a second rather than at the next heartbeat. Best effort: the heartbeat
    answer carries the same cancellations, so a dropped stream only slows cancels down."""

    def __init__(self, server: str, worker_id: str, on_cancel: Callable[[str, str], None]) -> None:
        self._server = server
        self._worker_id = worker_id
        self._on_cancel = on_cancel
        self._stop = threading.Event()
        self._call: Any = None  # the open stream, cancelled from stop()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="giobba-cancels", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            if self._call is not None:
                self._call.cancel()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        channel = grpc.insecure_channel(self._server, options=CHANNEL_OPTIONS)
        stub = ws_grpc.WorkerServiceStub(channel)
        backoff = 0.0
        try:
            while not self._stop.is_set():
                if self._follow(stub):
                    backoff = 0.0
                backoff = min(max(backoff * 2, 0.2), MAX_BACKOFF)
                self._stop.wait(backoff)
        finally:
            channel.close()

    def _follow(self, stub: ws_grpc.WorkerServiceStub) -> bool:
        """Read the stream until it breaks; True if it delivered anything (was healthy)."""
        request = ws.WatchCancellationsRequest(worker_id=self._worker_id)
        got = False
        with self._lock:
            if self._stop.is_set():
                return False
            self._call = stub.WatchCancellations(request, wait_for_ready=True)
        try:
            for item in self._call:
                got = True
                cancel = item.cancellation
                self._on_cancel(cancel.task_id, REASONS.get(cancel.reason, "cancelled"))
        except grpc.RpcError as exc:
            if not self._stop.is_set():
                log.debug("cancel stream ended: %s", exc.code().name)
        finally:
            with self._lock:
                self._call = None
        return got
