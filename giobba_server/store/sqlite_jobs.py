"""SQLite job store: the embedded default, in the same file as the task repository.

It keeps its own connection on its own thread (sqlite3 connections are thread-bound) and
relies on WAL plus a busy timeout to share the file with the task repository. Job writes
are rare (a create, a pause, one save per fire), so there is no group commit here.
"""

import json
import sqlite3
from datetime import datetime
from typing import Any, TypeVar

from giobba_server.domain.clock import to_ms
from giobba_server.domain.errors import AlreadyExists
from giobba_server.domain.job import Job
from giobba_server.domain.job_ports import JobPage
from giobba_server.store.job_codec import job_from_doc, job_to_doc
from giobba_server.store.sqlite_thread import SqliteThread, connect

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    is_active INTEGER NOT NULL,
    next_ms INTEGER,
    created_ms INTEGER NOT NULL,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (next_ms) WHERE is_active = 1;
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_ms, id);
"""


def _row(job: Job) -> tuple[Any, ...]:
    doc = job_to_doc(job)
    text = json.dumps(doc, default=lambda v: v.isoformat(), ensure_ascii=False)
    return (int(job.is_active), doc["next_ms"], doc["created_ms"], job.version, text)


def _decode(text: str) -> Job:
    return job_from_doc(json.loads(text), datetime.fromisoformat)


class SqliteJobRepository:
    def __init__(self, path: str) -> None:
        self._path = path
        self._thread = SqliteThread("sqlite job store")
        self._call = self._thread.call
        self._db = self._thread.db

    async def open(self) -> None:
        await self._call(self._open)

    def _open(self) -> None:
        self._thread.conn = connect(self._path, SCHEMA)

    async def insert(self, job: Job) -> None:
        def op() -> None:
            try:
                self._db().execute(
                    "INSERT INTO jobs (id, is_active, next_ms, created_ms, version, doc)"
                    " VALUES (?,?,?,?,?,?)",
                    (job.id, *_row(job)),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"job {job.id} already exists") from None

        await self._call(op)

    async def get(self, job_id: str) -> Job | None:
        def read() -> list[tuple[str]]:
            sql = "SELECT doc FROM jobs WHERE id = ?"
            return self._db().execute(sql, (job_id,)).fetchall()

        rows = await self._call(read)
        return _decode(rows[0][0]) if rows else None

    async def page(self, limit: int, token: str) -> JobPage:
        where, args = "", list[Any]([limit + 1])
        if token:
            created, _, last_id = token.partition(":")
            where = "WHERE created_ms > ? OR (created_ms = ? AND id > ?)"
            args = [int(created), int(created), last_id, limit + 1]
        sql = f"SELECT doc FROM jobs {where} ORDER BY created_ms, id LIMIT ?"
        rows = await self._call(lambda: self._db().execute(sql, args).fetchall())
        jobs = [_decode(doc) for (doc,) in rows[:limit]]
        more = len(rows) > limit and jobs
        return JobPage(jobs, f"{to_ms(jobs[-1].created_at)}:{jobs[-1].id}" if more else "")

    async def save(self, job: Job) -> bool:
        def op() -> bool:
            cur = self._db().execute(
                "UPDATE jobs SET is_active=?, next_ms=?, created_ms=?, version=?, doc=?"
                " WHERE id=? AND version=?",
                (*_row(job), job.id, job.version - 1),
            )
            return cur.rowcount == 1

        return await self._call(op)

    async def delete(self, job_id: str) -> bool:
        def op() -> bool:
            return self._db().execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount == 1

        return await self._call(op)

    async def upcoming(self, until: datetime, limit: int) -> list[Job]:
        sql = (
            "SELECT doc FROM jobs WHERE is_active = 1 AND next_ms IS NOT NULL AND next_ms <= ?"
            " ORDER BY next_ms LIMIT ?"
        )
        args = (to_ms(until), limit)
        rows = await self._call(lambda: self._db().execute(sql, args).fetchall())
        return [_decode(doc) for (doc,) in rows]

    async def close(self) -> None:
        await self._thread.close()
