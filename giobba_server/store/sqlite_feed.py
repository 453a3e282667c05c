"""SqliteFeed: the embedded default's activity feed, durable across restarts.

Events live in their own SQLite file next to the repository's (`giobba.db` ->
`giobba.db-feed`), so feed appends never wait on the repository's write lock. Cursors are
consecutive integers assigned in publish order and continue from the newest stored event
after a restart, so a monitor reconnecting to a restarted server resumes where it was.

Writes are group-committed like the repository's: every publish that arrives while a
commit is in flight goes into the next transaction, in order, and returns once committed.
Committed events are also kept in a bounded in-memory tail, which live watchers read
without touching the database; a watcher further behind than the tail pages through the
table. Retention is exact: rows older than the newest `retention` are deleted in batches
(a tenth of the retention), and a cursor whose successor is gone is refused.
"""

import asyncio
import functools
import json
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from dataclasses import replace
from typing import TypeVar

from giobba_server.domain.activity_codec import event_fields, event_from_fields
from giobba_server.domain.errors import FailedPrecondition
from giobba_server.domain.ports import ActivityEvent
from giobba_server.store.sqlite_thread import SqliteThread, connect

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS activity (
    cursor INTEGER PRIMARY KEY,
    event TEXT NOT NULL
);
"""
PAGE = 500
TAIL = 10_000  # events kept in memory for live watchers


def feed_path(database_path: str) -> str:
    """The feed's file beside the repository's (in memory when the repository is)."""
    return database_path if database_path == ":memory:" else f"{database_path}-feed"


def encode(event: ActivityEvent) -> str:
    return json.dumps(event_fields(event), ensure_ascii=False)


def decode(cursor: int, text: str) -> ActivityEvent:
    return event_from_fields(json.loads(text), cursor)


class SqliteFeed:
    def __init__(self, path: str, retention: int = 100_000) -> None:
        self._path = path
        self._retention = max(retention, 1)
        self._slack = max(self._retention // 10, 1)
        self._thread = SqliteThread("sqlite feed")
        self._call = self._thread.call
        self._db = self._thread.db
        self._assigned = 0  # newest cursor handed out
        self._committed = 0  # newest cursor on disk (and in the tail)
        self._oldest = 1  # oldest cursor still stored
        self._tail: deque[ActivityEvent] = deque(maxlen=min(TAIL, self._retention))
        self._pending: list[tuple[list[ActivityEvent], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()

    async def open(self) -> None:
        head, oldest = await self._call(self._open)
        self._assigned = self._committed = head
        self._oldest = oldest or head + 1

    def _open(self) -> tuple[int, int]:
        conn = self._thread.conn = connect(self._path, SCHEMA)
        head, oldest = conn.execute("SELECT max(cursor), min(cursor) FROM activity").fetchone()
        return int(head or 0), int(oldest or 0)

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self._thread.close()

    # -- publish: group commit ---------------------------------------------------------

    async def publish(self, events: Sequence[ActivityEvent]) -> None:
        if not events:
            return
        numbered = []
        for event in events:
            self._assigned += 1
            numbered.append(replace(event, cursor=self._assigned))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((numbered, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await done

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            events = [e for group, _ in batch for e in group]
            try:
                oldest = await self._call(self._append, events)
            except Exception as exc:
                # Cursors stay consecutive on disk: the failed ones are handed out again.
                self._assigned = self._committed + sum(len(g) for g, _ in self._pending)
                self._renumber()
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            self._oldest = oldest
            self._committed = events[-1].cursor
            self._tail.extend(events)
            async with self._changed:
                self._changed.notify_all()
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    def _renumber(self) -> None:
        cursor = self._committed
        renumbered = []
        for group, done in self._pending:
            fresh = []
            for event in group:
                cursor += 1
                fresh.append(replace(event, cursor=cursor))
            renumbered.append((fresh, done))
        self._pending = renumbered

    def _append(self, events: list[ActivityEvent]) -> int:
        """Insert, trim past the retention, commit; returns the oldest stored cursor."""
        conn = self._db()
        rows = [(e.cursor, encode(e)) for e in events]
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT INTO activity (cursor, event) VALUES (?, ?)", rows)
            newest = events[-1].cursor
            oldest = self._oldest
            if newest - oldest + 1 > self._retention + self._slack:
                oldest = newest - self._retention + 1
                conn.execute("DELETE FROM activity WHERE cursor < ?", (oldest,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return oldest

    # -- read --------------------------------------------------------------------------

    async def head(self) -> int:
        return self._committed

    def _check_retained(self, cursor: int) -> None:
        if cursor > 0 and cursor + 1 < self._oldest:
            raise FailedPrecondition(
                f"cursor {cursor} is older than the retained history (oldest is {self._oldest})"
            )

    async def watch(self, from_cursor: int | None) -> AsyncGenerator[ActivityEvent, None]:
        last = self._committed if from_cursor is None else max(from_cursor, 0)
        self._check_retained(last)
        if last == 0:
            last = self._oldest - 1
        while True:
            events = self._from_tail(last)
            if events is None:
                events = await self._from_table(last)
            for event in events:
                last = event.cursor
                yield event
            if not events:
                async with self._changed:
                    await self._changed.wait_for(functools.partial(self._newer_than, last))

    def _newer_than(self, cursor: int) -> bool:
        return self._committed > cursor

    def _from_tail(self, cursor: int) -> list[ActivityEvent] | None:
        """Events after `cursor` from memory; None if the tail does not reach back."""
        if cursor >= self._committed:
            return []
        if not self._tail or self._tail[0].cursor > cursor + 1:
            return None
        start = cursor + 1 - self._tail[0].cursor
        return [self._tail[i] for i in range(start, min(start + PAGE, len(self._tail)))]

    async def _from_table(self, cursor: int) -> list[ActivityEvent]:
        def read() -> list[tuple[int, str]]:
            sql = "SELECT cursor, event FROM activity WHERE cursor > ? ORDER BY cursor LIMIT ?"
            return self._db().execute(sql, (cursor, PAGE)).fetchall()

        rows = await self._call(read)
        if rows and rows[0][0] != cursor + 1:
            # Trimmed while this reader was behind: refuse rather than skip silently.
            raise FailedPrecondition(
                f"cursor {cursor} is older than the retained history (oldest is {rows[0][0]})"
            )
        return [decode(c, text) for c, text in rows]
