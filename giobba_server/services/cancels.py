"""Pushing cancellations to workers as they happen, not at their next heartbeat.

Each server keeps, per worker id, the `WatchCancellations` streams open on it. A kill (or
a timeout the server decides) is published through the `Signals` port to every server,
and the one holding that worker's stream hands it on. The broker owes the same
cancellation to the worker's next heartbeat, so a lost push delays a cancel, never loses
it; this is why publishing failures are logged, not raised.
"""

import asyncio
import logging
from collections.abc import AsyncGenerator

from giobba_server.domain.errors import GiobbaError
from giobba_server.domain.ports import CancelReason
from giobba_server.domain.signals import CancelNotice, Signals
from giobba_server.waits import pause_after_error

log = logging.getLogger("giobba.cancels")

MAX_BACKOFF = 5.0
MAX_BACKLOG = 1000


class CancelHub:
    def __init__(self, signals: Signals) -> None:
        self._signals = signals
        self._watchers: dict[str, set[asyncio.Queue[CancelNotice]]] = {}

    async def notify(self, worker_id: str, task_id: str, reason: CancelReason) -> None:
        """Tell the worker (wherever its stream is) to cancel; never raises."""
        if not worker_id:
            return
        try:
            await self._signals.publish_cancel(CancelNotice(worker_id, task_id, reason))
        except (GiobbaError, OSError) as exc:
            log.warning(
                "cancel push for task %s not sent (%s); heartbeat will carry it", task_id, exc
            )

    async def watch(self, worker_id: str) -> AsyncGenerator[CancelNotice, None]:
        """The cancellations for `worker_id` pushed to this server, until closed."""
        queue: asyncio.Queue[CancelNotice] = asyncio.Queue()
        self._watchers.setdefault(worker_id, set()).add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            queues = self._watchers.get(worker_id, set())
            queues.discard(queue)
            if not queues:
                self._watchers.pop(worker_id, None)

    async def run(self) -> None:
        """Follow the signals and hand each notice to local watchers; re-subscribe on
        errors (what is missed meanwhile still arrives by heartbeat)."""
        backoff = 0.0
        while True:
            try:
                async for notice in self._signals.watch_cancels():
                    backoff = 0.0
                    self._deliver(notice)
            except (GiobbaError, OSError) as exc:
                backoff = min(max(backoff * 2, 0.1), MAX_BACKOFF)
                log.warning("cancel signals lost (%s); re-subscribing in %.1fs", exc, backoff)
                await pause_after_error(backoff)

    def _deliver(self, notice: CancelNotice) -> None:
        for queue in self._watchers.get(notice.worker_id, ()):
            if queue.qsize() < MAX_BACKLOG:
                queue.put_nowait(notice)
