"""In-process cancel signals: one server, so publishing is handing to local watchers."""

import asyncio
from collections.abc import AsyncGenerator

from giobba_server.domain.signals import CancelNotice

MAX_BACKLOG = 1000


class MemorySignals:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[CancelNotice]] = set()

    async def publish_cancel(self, notice: CancelNotice) -> None:
        for queue in self._subscribers:
            if queue.qsize() < MAX_BACKLOG:  # the heartbeat still delivers what is dropped
                queue.put_nowait(notice)

    async def watch_cancels(self) -> AsyncGenerator[CancelNotice, None]:
        queue: asyncio.Queue[CancelNotice] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)
