"""In-process activity feed and worker registry for the embedded default."""

import asyncio
import functools
import itertools
from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import replace
from datetime import datetime

from giobba_server.domain.clock import now_ms, to_ms
from giobba_server.domain.errors import FailedPrecondition
from giobba_server.domain.ports import ActivityEvent, WorkerStatus


class MemoryFeed:
    """A bounded ring of events with strictly increasing cursors, replay then live."""

    def __init__(self, retention: int = 100_000) -> None:
        self._events: deque[ActivityEvent] = deque(maxlen=retention)
        self._cursor = 0
        self._changed = asyncio.Condition()

    async def publish(self, events: Sequence[ActivityEvent]) -> None:
        for event in events:
            self._cursor += 1
            self._events.append(replace(event, cursor=self._cursor))
        async with self._changed:
            self._changed.notify_all()

    async def head(self) -> int:
        return self._cursor

    def _oldest(self) -> int:
        return self._events[0].cursor if self._events else self._cursor + 1

    async def watch(self, from_cursor: int | None) -> AsyncGenerator[ActivityEvent, None]:
        last = self._cursor if from_cursor is None else from_cursor
        if from_cursor is not None and from_cursor + 1 < self._oldest() and from_cursor > 0:
            raise FailedPrecondition(
                f"cursor {from_cursor} is older than the retained history "
                f"(oldest is {self._oldest()})"
            )
        while True:
            for event in self._since(last):
                last = event.cursor
                yield event
            async with self._changed:
                await self._changed.wait_for(functools.partial(self._newer_than, last))

    def _newer_than(self, cursor: int) -> bool:
        return self._cursor > cursor

    def _since(self, cursor: int) -> list[ActivityEvent]:
        if not self._events or self._events[-1].cursor <= cursor:
            return []
        start = max(0, cursor - self._events[0].cursor + 1)
        return list(itertools.islice(self._events, start, None))


class MemoryRegistry:
    def __init__(self, clock: Callable[[], int] = now_ms) -> None:
        self._clock = clock
        self._workers: dict[str, tuple[WorkerStatus, int]] = {}
        self._subscribers: set[asyncio.Queue[WorkerStatus]] = set()

    async def beat(self, status: WorkerStatus, ttl_ms: int) -> None:
        self._workers[status.id] = (status, to_ms(status.last_seen) + ttl_ms)
        for queue in self._subscribers:
            if queue.qsize() < 1000:  # a stalled watcher loses beats, not memory
                queue.put_nowait(status)

    async def alive(self) -> list[WorkerStatus]:
        now = self._clock()
        for worker_id in [w for w, (_, until) in self._workers.items() if until <= now]:
            del self._workers[worker_id]
        return sorted((s for s, _ in self._workers.values()), key=lambda s: s.id)

    async def last_seen(self, worker_id: str) -> datetime | None:
        entry = self._workers.get(worker_id)
        if entry is None or entry[1] <= self._clock():
            return None
        return entry[0].last_seen

    async def watch(self) -> AsyncGenerator[WorkerStatus, None]:
        queue: asyncio.Queue[WorkerStatus] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)
