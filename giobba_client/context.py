"""What a handler sees: the task, its attempt, and whether it should stop."""

import asyncio
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from giobba_client._waits import wait_event
from giobba_client.models import Task


class Cancelled(Exception):
    """Raised by `TaskContext.check()` once the task was killed, timed out or lost."""


class NoRetry(Exception):
    """Raise from a handler to fail the task at once, whatever retries it has left."""


@dataclass(frozen=True)
class HandlerResult:
    """The seed's return shape: `err` set means the attempt failed with that message."""

    payload: dict[str, Any] | None = None
    err: str | BaseException | None = None


@dataclass
class TaskContext:
    """Cancellation for one attempt, usable from threads and from async code alike.

    Plain-function handlers poll `cancelled` or block in `wait(seconds)`; async handlers
    `await sleep(seconds)` or `await cancelled_event()`; both may call `check()`.
    """

    task: Task
    attempt: int
    lease_token: str
    lease_expires_at: datetime | None
    _loop: asyncio.AbstractEventLoop
    _flag: threading.Event = field(default_factory=threading.Event)
    _async_flag: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str = ""

    @property
    def cancelled(self) -> bool:
        return self._flag.is_set()

    def check(self) -> None:
        if self._flag.is_set():
            raise Cancelled(self.reason or "cancelled")

    def wait(self, seconds: float) -> bool:
        """Block up to `seconds` (in a thread); True if the task was cancelled meanwhile."""
        return self._flag.wait(seconds)

    async def sleep(self, seconds: float) -> bool:
        """Async `wait`: True if the task was cancelled before `seconds` passed."""
        return await wait_event(self._async_flag, seconds)

    async def cancelled_event(self) -> None:
        await self._async_flag.wait()

    def cancel(self, reason: str) -> None:
        """Called by the runtime (from any thread)."""
        if self._flag.is_set():
            return
        self.reason = reason
        self._flag.set()
        self._loop.call_soon_threadsafe(self._async_flag.set)
