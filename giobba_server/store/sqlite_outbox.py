"""SqliteOutbox: the embedded callback outbox, a table in the repository's database.

It goes through the repository's connection and group commit, so an entry and the
terminal save that follows it land in order on the one writer thread.
"""

import json
import sqlite3
from collections.abc import Sequence

from giobba_server.domain.callback import OutboxEntry
from giobba_server.store.outbox_codec import entry_doc, entry_from
from giobba_server.store.sqlite import SqliteRepository

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS outbox (id TEXT PRIMARY KEY, due_ms INTEGER NOT NULL,"
    " doc TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS outbox_due ON outbox (due_ms)",
)


def _row(entry: OutboxEntry) -> tuple[str, int, str]:
    return entry.id, entry.due_ms, json.dumps(entry_doc(entry), ensure_ascii=False)


class SqliteOutbox:
    def __init__(self, repo: SqliteRepository) -> None:
        self._repo = repo

    async def open(self) -> None:
        def op(conn: sqlite3.Connection) -> None:
            for statement in SCHEMA:  # inside the group commit: no executescript
                conn.execute(statement)

        await self._repo.run_write(op)

    async def add(self, entry: OutboxEntry) -> None:
        row = _row(entry)

        def op(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR IGNORE INTO outbox (id, due_ms, doc) VALUES (?, ?, ?)", row)

        await self._repo.run_write(op)

    async def get(self, entry_id: str) -> OutboxEntry | None:
        def read(conn: sqlite3.Connection) -> list[tuple[str]]:
            return conn.execute("SELECT doc FROM outbox WHERE id = ?", (entry_id,)).fetchall()

        rows = await self._repo.run_read(read)
        return entry_from(json.loads(rows[0][0])) if rows else None

    async def update(self, entry: OutboxEntry) -> None:
        entry_id, due, doc = _row(entry)

        def op(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE outbox SET due_ms = ?, doc = ? WHERE id = ?", (due, doc, entry_id))

        await self._repo.run_write(op)

    async def remove(self, entry_id: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM outbox WHERE id = ?", (entry_id,))

        await self._repo.run_write(op)

    async def pending(self, limit: int) -> Sequence[OutboxEntry]:
        def read(conn: sqlite3.Connection) -> list[tuple[str]]:
            sql = "SELECT doc FROM outbox ORDER BY due_ms, id LIMIT ?"
            return conn.execute(sql, (limit,)).fetchall()

        return [entry_from(json.loads(doc)) for (doc,) in await self._repo.run_read(read)]
