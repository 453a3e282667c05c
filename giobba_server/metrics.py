"""Prometheus metrics: `metrics.listen` serves them over HTTP (off by default).

Two kinds, on purpose:

- What this server did (counters and histograms: submits, completions, failures, lease
  recoveries, callback deliveries, ETA lateness, run time, RPC latency). Sum them across
  servers.
- What the cluster holds (gauges `giobba_tasks{state,queue}` and `giobba_queue_depth`):
  counted from the repository's live tasks at start-up, then kept up to date by
  following the shared activity feed, so every server reports the same numbers. Take
  the max across servers, not the sum.

Nothing here carries a payload, a result, a URL or a secret: labels are queue names,
states, kinds, RPC method names and outcomes.
"""

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from giobba_server.domain.callback import CallbackStatus, OutboxEntry
from giobba_server.domain.errors import GiobbaError
from giobba_server.domain.ports import ActivityEvent, Feed, Repository
from giobba_server.domain.task import Task, TaskState

log = logging.getLogger("giobba.metrics")

LIVE = (TaskState.PENDING, TaskState.RUNNING)
WORKER_LOST = "worker lost"
_TIME_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_RUN_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events = Counter(
            "giobba_task_events", "State changes made by this server", ["kind", "queue"], registry=r
        )
        self.submitted = Counter(
            "giobba_tasks_submitted", "Tasks submitted to this server", ["queue"], registry=r
        )
        self.completed = Counter(
            "giobba_tasks_completed", "Tasks completed via this server", ["queue"], registry=r
        )
        self.failed = Counter(
            "giobba_tasks_failed",
            "Tasks ended FAILED via this server (retries exhausted)",
            ["queue"],
            registry=r,
        )
        self.recoveries = Counter(
            "giobba_lease_recoveries",
            "Expired leases turned into failed attempts (worker lost)",
            ["queue"],
            registry=r,
        )
        self.lateness = Histogram(
            "giobba_eta_lateness_seconds",
            "Start time minus ETA (first attempts and retries)",
            ["queue"],
            buckets=_TIME_BUCKETS,
            registry=r,
        )
        self.run_time = Histogram(
            "giobba_task_run_seconds",
            "Last attempt's start to the task's end",
            ["queue", "state"],
            buckets=_RUN_BUCKETS,
            registry=r,
        )
        self.callbacks = Counter(
            "giobba_callback_attempts",
            "Callback POSTs by outcome (DELIVERED, PENDING = will retry, FAILED = gave up)",
            ["outcome"],
            registry=r,
        )
        self.callback_time = Histogram(
            "giobba_callback_post_seconds",
            "Duration of one callback POST",
            buckets=_TIME_BUCKETS,
            registry=r,
        )
        self.rpc = Histogram(
            "giobba_rpc_seconds",
            "Unary RPC latency by method and status code",
            ["method", "code"],
            buckets=_TIME_BUCKETS,
            registry=r,
        )
        self.tasks = Gauge(
            "giobba_tasks", "Live tasks in the cluster by state", ["state", "queue"], registry=r
        )
        self.depth = Gauge(
            "giobba_queue_depth", "PENDING tasks in the cluster by queue", ["queue"], registry=r
        )
        self._states: dict[str, tuple[str, TaskState]] = {}  # live task -> (queue, state)
        self._server: Any = None

    # -- this server's own work -------------------------------------------------------

    def published(self, events: Sequence[ActivityEvent]) -> None:
        for event in events:
            self.events.labels(event.kind, event.queue).inc()
            if event.kind == "CREATED":
                self.submitted.labels(event.queue).inc()

    def observe(self, before: Task, after: Task, kind: str) -> None:
        queue = after.queue
        if kind == "STARTED" and after.started_at is not None:
            late = (after.started_at - after.eta).total_seconds()
            self.lateness.labels(queue).observe(max(late, 0.0))
        if after.state is TaskState.COMPLETED:
            self.completed.labels(queue).inc()
        elif after.state is TaskState.FAILED:
            self.failed.labels(queue).inc()
        if after.state.terminal and after.started_at and after.completed_at:
            span = (after.completed_at - after.started_at).total_seconds()
            self.run_time.labels(queue, after.state.value).observe(max(span, 0.0))
        if before.state is TaskState.RUNNING and after.error == WORKER_LOST:
            self.recoveries.labels(queue).inc()

    def callback(
        self, entry: OutboxEntry, outcome: object, status: CallbackStatus, seconds: float
    ) -> None:
        self.callbacks.labels(status.value).inc()
        self.callback_time.observe(seconds)

    def rpc_done(self, method: str, code: str, seconds: float) -> None:
        self.rpc.labels(method, code).observe(seconds)

    # -- the cluster's live tasks -----------------------------------------------------

    def _move(self, task_id: str, queue: str, state: TaskState | None) -> None:
        previous = self._states.pop(task_id, None)
        if previous is not None:
            self.tasks.labels(previous[1].value, previous[0]).dec()
            if previous[1] is TaskState.PENDING:
                self.depth.labels(previous[0]).dec()
        if state in LIVE:
            assert state is not None
            self._states[task_id] = (queue, state)
            self.tasks.labels(state.value, queue).inc()
            if state is TaskState.PENDING:
                self.depth.labels(queue).inc()

    def reset(self) -> None:
        self.tasks.clear()
        self.depth.clear()
        self._states.clear()

    async def follow(self, feed: Feed, repo: Repository) -> None:
        """Count the live tasks, then apply the feed from before the count: an event the
        count already reflects changes nothing (the task is already in that state)."""
        head = await feed.head()
        after = ""
        while True:
            page = await repo.live(after, 1000)
            for task in page:
                self._move(task.id, task.queue, task.state)
            if len(page) < 1000:
                break
            after = page[-1].id
        events: AsyncGenerator[ActivityEvent, None] = feed.watch(head)
        try:
            async for event in events:
                known = self._states.get(event.task_id)
                if known is None or known[1] is not event.new_state:
                    self._move(event.task_id, event.queue, event.new_state)
        finally:
            await events.aclose()

    # -- serving ------------------------------------------------------------------------

    def serve(self, listen: str) -> None:
        host, _, port = listen.rpartition(":")
        self._server, _ = start_http_server(int(port), host, self.registry)
        log.info("metrics on http://%s/metrics", listen)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class MeteredFeed:
    """The feed, counting what this server publishes."""

    def __init__(self, feed: Feed, metrics: Metrics) -> None:
        self._feed = feed
        self._metrics = metrics

    async def publish(self, events: Sequence[ActivityEvent]) -> None:
        await self._feed.publish(events)
        self._metrics.published(events)

    async def head(self) -> int:
        return await self._feed.head()

    def watch(self, from_cursor: int | None) -> AsyncGenerator[ActivityEvent, None]:
        return self._feed.watch(from_cursor)


class RpcTimer(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Times unary RPCs (streams are long-lived by design: not timed)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: Any
    ) -> Any:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = str(details.method).rsplit("/", 1)[-1]
        inner = handler.unary_unary
        metrics = self._metrics

        async def timed(request: Any, context: Any) -> Any:
            began = time.perf_counter()
            failed = False
            try:
                return await inner(request, context)
            except BaseException:
                failed = True
                raise
            finally:
                code = context.code()
                name = code.name if code is not None else ("UNKNOWN" if failed else "OK")
                metrics.rpc_done(method, name, time.perf_counter() - began)

        return grpc.unary_unary_rpc_method_handler(
            timed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


async def follow_forever(metrics: Metrics, feed: Feed, repo: Repository) -> None:
    """`Metrics.follow`, restarted with a pause when a backend is away."""
    pause = asyncio.Event()
    while True:
        try:
            await metrics.follow(feed, repo)
        except GiobbaError as exc:
            log.warning("metrics: following the feed failed: %s", exc)
        metrics.reset()  # recount from scratch
        try:
            async with asyncio.timeout(2.0):
                await pause.wait()
        except TimeoutError:
            pass
