"""The cancel-signal port: tell whichever server holds a worker's push stream to cancel.

A kill is decided on one server, but the worker it concerns may hold its
`WatchCancellations` stream open on another. The broker already owes the cancellation to
the worker (delivered by the next heartbeat, whatever happens); a signal is the fast path
on top of it, so delivery may be lossy but must be quick.
"""

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Protocol

from giobba_server.domain.ports import CancelReason


@dataclass(frozen=True)
class CancelNotice:
    worker_id: str
    task_id: str
    reason: CancelReason


class Signals(Protocol):
    async def publish_cancel(self, notice: CancelNotice) -> None:
        """Announce to every server (this one included); best effort."""

    def watch_cancels(self) -> AsyncGenerator[CancelNotice, None]:
        """Every notice published from now on, by any server. May raise on a broken
        connection; the caller re-subscribes."""
        ...
