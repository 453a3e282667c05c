"""The Outbox port: callbacks owed, kept durably until delivered or given up on.

Entries sit with the durable record (SQLite table, MongoDB collection) and are keyed by
delivery id, so every hot-path step is a primary-key (`_id`) read or write. The outbox
only holds entries not yet settled (delivered entries are removed), so listing what is
due reads a small table even on stores that scan (FerretDB).

Which server attempts an entry is not decided here: each attempt is claimed on the fire
lock (Redis SET NX in production) under (delivery id, attempt number), so exactly one
server makes attempt N, and a server that died mid-attempt leaves a claim that lapses.
"""

from collections.abc import Sequence
from typing import Protocol

from giobba_server.domain.callback import CallbackStatus, OutboxEntry


class Outbox(Protocol):
    async def add(self, entry: OutboxEntry) -> None:
        """Store the entry; adding an id that exists keeps the stored one."""

    async def get(self, entry_id: str) -> OutboxEntry | None: ...

    async def update(self, entry: OutboxEntry) -> None:
        """Replace the stored entry with the same id (attempts, due time, last error)."""

    async def remove(self, entry_id: str) -> None: ...

    async def pending(self, limit: int) -> Sequence[OutboxEntry]:
        """Up to `limit` entries, earliest due first."""


class CallbackRecorder(Protocol):
    """Where a delivery's outcome goes: onto the task, leaving its state alone."""

    async def record_callback(
        self, task_id: str, status: CallbackStatus, attempts: int, error: str
    ) -> None: ...


class CallbackQueue(Protocol):
    """The delivery loop as the transitions see it."""

    async def stage(self, entry: OutboxEntry) -> None:
        """Persist the entry (before the terminal move is saved)."""

    def ready(self, entry: OutboxEntry) -> None:
        """The terminal move is saved: deliver."""
