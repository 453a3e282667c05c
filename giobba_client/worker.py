"""The worker runtime: long-poll for due tasks, run handlers, report back.

Slots bound how many tasks run at once; the worker asks only for as many tasks as it has
free slots (no prefetch, so priority order holds across the fleet). Plain-function handlers
run on threads of their own, so one that ignores cancellation can be abandoned without
taking its slot with it. Heartbeats and the cancel push stream run on threads of their own
(see `_heartbeat`), so handlers that block the event loop cannot starve them.
"""

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration

from giobba_client import _convert as conv
from giobba_client._beat_process import BeatProcess
from giobba_client._gen.giobba.v1 import task_pb2 as pb
from giobba_client._gen.giobba.v1 import worker_service_pb2 as ws
from giobba_client._gen.giobba.v1 import worker_service_pb2_grpc as ws_grpc
from giobba_client._heartbeat import Beat, CancelWatcher, Heartbeater
from giobba_client._waits import pause_after_error
from giobba_client.aio import CHANNEL_OPTIONS, default_server
from giobba_client.context import Cancelled, HandlerResult, NoRetry, TaskContext
from giobba_client.errors import from_rpc_error
from giobba_client.handlers import H, Handler, Handlers, is_async

log = logging.getLogger("giobba.worker")

VERSION = "0.1.0"
POLL_WAIT = 30.0  # the server answers sooner when work arrives
KILL_GRACE = 5.0  # how long a cancelled handler may take before it is abandoned
MAX_BACKOFF = 5.0
REPORT_ATTEMPTS = 8


@dataclass
class _Running:
    ctx: TaskContext
    token: str
    # Set once the handler has an outcome: a heartbeat racing the report may then find the
    # lease already ended by it, and that "lease lost" is no news.
    reporting: bool = False


@dataclass(frozen=True)
class _Outcome:
    """What to tell the server: a result, a failure, or nothing (the server moved on)."""

    result: str | None = None
    error: str | None = None
    no_retry: bool = False


SILENT = _Outcome()


def _error_text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _outcome_of(value: Any) -> _Outcome:
    if isinstance(value, HandlerResult):
        if value.err is not None:
            err = value.err
            text = _error_text(err) if isinstance(err, BaseException) else str(err)
            return _Outcome(error=text or "failed")
        value = value.payload
    if value is None:
        value = {}
    if not isinstance(value, dict):
        kind = type(value).__name__
        return _Outcome(error=f"handler returned {kind}, expected a dict", no_retry=True)
    try:
        return _Outcome(result=json.dumps(value, ensure_ascii=False, allow_nan=False))
    except (TypeError, ValueError) as exc:
        return _Outcome(error=f"result is not JSON: {exc}", no_retry=True)


def _result_refused(outcome: _Outcome, exc: grpc.aio.AioRpcError) -> _Outcome | None:
    """The failure to report when the server refused a result it cannot keep (too big for
    its store, say): INVALID_ARGUMENT, with nothing moved. Retried per the task's policy,
    like any failed attempt, rather than left to hang until its lease lapses."""
    if outcome.result is None or exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
        return None
    return _Outcome(error=f"result refused by the server: {exc.details()}")


class Worker:
    """Serve `queues` with up to `concurrency` tasks at a time.

    >>> worker = Worker(queues=["default"], concurrency=4)
    >>> @worker.handler("echo")
    ... def echo(ctx, task):
    ...     return task.payload
    >>> worker.run()  # until SIGINT/SIGTERM
    """

    def __init__(
        self,
        server: str | None = None,
        queues: Iterable[str] = ("default",),
        concurrency: int = 1,
        *,
        handlers: Handlers | None = None,
        worker_id: str | None = None,
        drain_timeout: float = 30.0,
        kill_grace: float = KILL_GRACE,
        poll_wait: float = POLL_WAIT,
        heartbeat: str = "process",
    ) -> None:
        """`heartbeat` is "process" (a child process beats: survives handlers that hold
        the GIL) or "thread" (cheaper; enough when handlers only block the event loop)."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.server = server or default_server()
        self.queues = list(queues) or ["default"]
        self.concurrency = concurrency
        self.handlers = handlers or Handlers()
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.drain_timeout = drain_timeout
        self.kill_grace = kill_grace
        self.poll_wait = poll_wait
        if heartbeat not in ("process", "thread"):
            raise ValueError('heartbeat must be "process" or "thread"')
        self.heartbeat = heartbeat
        self._beats: Heartbeater | BeatProcess | None = None
        self.completed = 0
        self.failed = 0
        self._running: dict[str, _Running] = {}
        self._lock = threading.Lock()  # _running is read by the heartbeat thread
        self._started = conv.now()
        self._stopping: asyncio.Event | None = None
        self._halt: asyncio.Event | None = None
        self._slot_freed: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- registration ------------------------------------------------------------------

    def register_handler(self, name: str, handler: Handler) -> None:
        self.handlers.register(name, handler)

    def handler(self, name: str | None = None) -> Callable[[H], H]:
        return self.handlers(name)

    # -- lifecycle ---------------------------------------------------------------------

    def run(self) -> None:
        """Run until SIGINT/SIGTERM: the first drains, a second exits at once."""
        asyncio.run(self.run_async(install_signals=True))

    def stop(self) -> None:
        """Ask for a graceful stop (thread-safe); a second call stops at once."""
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._on_signal)

    def _on_signal(self) -> None:
        assert self._stopping is not None and self._halt is not None
        if self._stopping.is_set():
            log.warning("second stop request: exiting without draining")
            self._halt.set()
        else:
            log.info("stopping: no new tasks; draining %d running", len(self._running))
            self._stopping.set()

    async def run_async(self, install_signals: bool = False) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping, self._halt = asyncio.Event(), asyncio.Event()
        self._slot_freed = asyncio.Event()
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._loop.add_signal_handler(sig, self._on_signal)
        kind = BeatProcess if self.heartbeat == "process" else Heartbeater
        self._beats = beats = kind(self.server, self._snapshot, self._on_cancel)
        beats.start()
        pushes = CancelWatcher(self.server, self.id, self._on_cancel)
        pushes.start()
        channel = grpc.aio.insecure_channel(self.server, options=CHANNEL_OPTIONS)
        stub = ws_grpc.WorkerServiceStub(channel)
        runs: set[asyncio.Task[None]] = set()
        log.info("worker %s serving %s (concurrency %d)", self.id, self.queues, self.concurrency)
        try:
            await self._lease_loop(stub, runs)
            await self._drain(stub, runs)
        finally:
            await asyncio.to_thread(pushes.stop)
            # After a second signal the leases must lapse, not be renewed one last time.
            await asyncio.to_thread(beats.stop, not self._halt.is_set())
            await channel.close(grace=None)
            log.info("worker %s stopped", self.id)

    # -- leasing -----------------------------------------------------------------------

    async def _lease_loop(
        self, stub: ws_grpc.WorkerServiceStub, runs: set[asyncio.Task[None]]
    ) -> None:
        assert self._stopping is not None and self._slot_freed is not None
        backoff = 0.0
        while not self._stopping.is_set():
            free = self.concurrency - len(self._running)
            if free <= 0:
                self._slot_freed.clear()
                await _first(self._slot_freed.wait(), self._stopping.wait())
                continue
            try:
                leased = await _first(self._lease(stub, free), self._stopping.wait())
                backoff = 0.0
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                    raise from_rpc_error(exc) from None  # a bad queue name: retrying won't help
                backoff = min(max(backoff * 2, 0.2), MAX_BACKOFF)
                log.warning("lease failed (%s); retrying in %.1fs", exc.code().name, backoff)
                await pause_after_error(backoff, self._stopping)
                continue
            # A stop that wins the race yields True from stopping.wait(), not a list.
            for item in leased if isinstance(leased, list) else []:
                run = asyncio.create_task(self._execute(stub, item))
                runs.add(run)
                run.add_done_callback(runs.discard)

    async def _lease(self, stub: ws_grpc.WorkerServiceStub, free: int) -> list[ws.LeasedTask]:
        wait = Duration()
        wait.FromTimedelta(timedelta(seconds=self.poll_wait))
        request = ws.LeaseTasksRequest(
            worker_id=self.id,
            queues=self.queues,
            max_tasks=free,
            wait=wait,
            worker=self._info(),
        )
        reply = await stub.LeaseTasks(request, timeout=self.poll_wait + 10)
        # Register the runs before anything else can yield, so slot counts stay exact.
        for item in reply.tasks:
            self._track(item)
        return list(reply.tasks)

    def _track(self, item: ws.LeasedTask) -> None:
        assert self._loop is not None
        ctx = TaskContext(
            task=conv.task(item.task),
            attempt=item.attempt,
            lease_token=item.lease_token,
            lease_expires_at=conv.opt_time(item, "lease_expires_at"),
            _loop=self._loop,
        )
        with self._lock:
            self._running[item.task.id] = _Running(ctx, item.lease_token)
        self._leases_changed()

    # -- running -----------------------------------------------------------------------

    async def _execute(self, stub: ws_grpc.WorkerServiceStub, item: ws.LeasedTask) -> None:
        running = self._running[item.task.id]
        ctx = running.ctx
        timeout = conv.opt_span(item, "timeout")
        try:
            outcome = await self._outcome(ctx, timeout)
            running.reporting = True
            if outcome is not SILENT:
                await self._report(stub, ctx, outcome)
        finally:
            with self._lock:
                self._running.pop(item.task.id, None)
            self._leases_changed()
            assert self._slot_freed is not None
            self._slot_freed.set()

    async def _outcome(self, ctx: TaskContext, timeout: timedelta | None) -> _Outcome:
        handler = self.handlers.get(ctx.task.name)
        if handler is None:
            # Every worker on a queue must know every task name sent to it: route others
            # to queues of their own. The attempt fails (and retries per max_retries).
            log.warning("task %s: no handler named %r here", ctx.task.id, ctx.task.name)
            return _Outcome(error=f"no handler named {ctx.task.name!r} on worker {self.id}")
        call = self._start(handler, ctx)
        limit = timeout.total_seconds() if timeout is not None else None
        done = await _settle(call, ctx, limit)
        if not done:  # timed out: cancel, give the handler its grace, then abandon it
            ctx.cancel("timeout")
            await _settle(call, ctx, self.kill_grace, stop_on_cancel=False)
            _abandon(call)
            return _Outcome(error="timeout")
        if ctx.cancelled and not call.done():
            await _settle(call, ctx, self.kill_grace, stop_on_cancel=False)
            _abandon(call)
        if ctx.cancelled:
            return SILENT if ctx.reason != "timeout" else _Outcome(error="timeout")
        return self._judge(call)

    def _start(self, handler: Handler, ctx: TaskContext) -> asyncio.Future[Any]:
        if is_async(handler):
            return asyncio.ensure_future(handler(ctx, ctx.task))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def target() -> None:
            try:
                value = handler(ctx, ctx.task)
            except BaseException as exc:
                loop.call_soon_threadsafe(_set_exception, future, exc)
            else:
                loop.call_soon_threadsafe(_set_result, future, value)

        # A thread per run, not a pool: an abandoned handler must not keep a slot.
        threading.Thread(target=target, name=f"giobba-task-{ctx.task.id}", daemon=True).start()
        return future

    def _judge(self, call: asyncio.Future[Any]) -> _Outcome:
        exc = call.exception()
        if exc is None:
            return _outcome_of(call.result())
        if isinstance(exc, Cancelled):
            return _Outcome(error=_error_text(exc))
        log.info("task handler raised %s: %s", type(exc).__name__, exc)
        return _Outcome(error=_error_text(exc), no_retry=isinstance(exc, NoRetry))

    async def _report(
        self, stub: ws_grpc.WorkerServiceStub, ctx: TaskContext, outcome: _Outcome
    ) -> None:
        backoff = 0.2
        for _ in range(REPORT_ATTEMPTS):
            try:
                await self._send(stub, ctx, outcome)
                return
            except grpc.aio.AioRpcError as exc:
                if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    assert self._halt is not None
                    await pause_after_error(backoff, self._halt)
                    backoff = min(backoff * 2, MAX_BACKOFF)
                    continue
                refused = _result_refused(outcome, exc)
                if refused is not None:  # the lease is still ours: fail the attempt instead
                    log.warning("task %s: %s", ctx.task.id, refused.error)
                    outcome = refused
                    continue
                # ABORTED: the lease went stale (killed, recovered elsewhere); nothing to do.
                log.warning("report for %s refused: %s", ctx.task.id, exc.details())
                return
        log.error("gave up reporting task %s; its lease will expire", ctx.task.id)

    async def _send(
        self, stub: ws_grpc.WorkerServiceStub, ctx: TaskContext, outcome: _Outcome
    ) -> None:
        if outcome.result is not None:
            await stub.CompleteTask(
                ws.CompleteTaskRequest(
                    task_id=ctx.task.id, lease_token=ctx.lease_token, result=outcome.result
                ),
                timeout=30,
            )
            self.completed += 1
            return
        await stub.FailTask(
            ws.FailTaskRequest(
                task_id=ctx.task.id,
                lease_token=ctx.lease_token,
                error=outcome.error or "failed",
                no_retry=outcome.no_retry,
            ),
            timeout=30,
        )
        self.failed += 1

    # -- shutdown ----------------------------------------------------------------------

    async def _drain(self, stub: ws_grpc.WorkerServiceStub, runs: set[asyncio.Task[None]]) -> None:
        assert self._halt is not None
        if runs and not self._halt.is_set():
            pending = asyncio.gather(*list(runs), return_exceptions=True)
            await _first(asyncio.shield(pending), self._halt.wait(), timeout=self.drain_timeout)
        if self._halt.is_set():
            return  # second signal: leave at once; leases expire on the server
        with self._lock:
            left = list(self._running.values())
        for running in left:
            running.ctx.cancel("shutdown")
            with contextlib.suppress(grpc.aio.AioRpcError):
                await stub.ReleaseTask(
                    ws.ReleaseTaskRequest(task_id=running.ctx.task.id, lease_token=running.token),
                    timeout=10,
                )
                log.info("handed back task %s", running.ctx.task.id)

    # -- heartbeat thread callbacks ----------------------------------------------------

    def _leases_changed(self) -> None:
        if self._beats is not None:
            self._beats.changed()

    def _info(self) -> pb.WorkerInfo:
        with self._lock:
            running = list(self._running)
        info = pb.WorkerInfo(
            id=self.id,
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=self.queues,
            concurrency=self.concurrency,
            running_task_ids=running,
            completed=self.completed,
            failed=self.failed,
            version=VERSION,
            kind=pb.WORKER_KIND_WORKER,
        )
        info.started_at.FromDatetime(self._started)
        return info

    def _snapshot(self) -> Beat:
        with self._lock:
            leases = [(task_id, r.token) for task_id, r in self._running.items()]
        return Beat(self._info(), leases)

    def _on_cancel(self, task_id: str, reason: str) -> None:
        with self._lock:
            running = self._running.get(task_id)
        if running is not None and not running.reporting:
            log.info("task %s cancelled: %s", task_id, reason)
            running.ctx.cancel(reason)


# -- small asyncio helpers -------------------------------------------------------------


def _set_result(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def _abandon(call: asyncio.Future[Any]) -> None:
    """Stop caring about a handler: cancel it if async; a thread is left to finish alone."""
    if not call.done():
        call.cancel()
    call.add_done_callback(lambda f: f.cancelled() or f.exception())


async def _settle(
    call: asyncio.Future[Any], ctx: TaskContext, limit: float | None, stop_on_cancel: bool = True
) -> bool:
    """Wait for the handler to finish, for `limit` seconds, or until it is cancelled.
    True unless the limit passed with the handler still running."""
    waiters: list[Awaitable[Any]] = [asyncio.shield(call)]
    if stop_on_cancel:
        waiters.append(ctx.cancelled_event())
    await _wait_any(*waiters, timeout=limit)
    return call.done() or ctx.cancelled or limit is None


async def _wait_any(
    *awaitables: Awaitable[Any], timeout: float | None = None
) -> tuple[list[asyncio.Future[Any]], set[asyncio.Future[Any]]]:
    """Wait until one finishes (or `timeout`), cancel the rest; never raises their errors."""
    tasks: list[asyncio.Future[Any]] = [asyncio.ensure_future(a) for a in awaitables]
    try:
        done, _ = await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
    for task in tasks:  # retrieve outcomes so asyncio does not log them as lost
        if task.done() and not task.cancelled():
            task.exception()
    return tasks, done


async def _first(*awaitables: Awaitable[Any], timeout: float | None = None) -> Any:
    """Result of whichever finishes first (None if none did in time); cancel the rest.
    Raises what that one raised."""
    tasks, done = await _wait_any(*awaitables, timeout=timeout)
    for task in tasks:
        if task in done and not task.cancelled():
            return task.result()
    return None
