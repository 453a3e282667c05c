"""SQLite repository: the embedded default's durable record.

sqlite3 is blocking and its connection is bound to one thread, so every call runs on one
dedicated thread. Writes are group-committed: all writes that arrive while a commit is in
flight go into the next transaction together (each in its own savepoint, so one failing
insert does not sink the others), and each caller is answered only after its commit.
"""

import asyncio
import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from giobba_server.domain.document import refuse_oversized
from giobba_server.domain.errors import AlreadyExists
from giobba_server.domain.ports import Page, TaskFilter, page_token
from giobba_server.domain.task import Task, TaskState
from giobba_server.store.codec import from_doc, to_doc
from giobba_server.store.sqlite_thread import SqliteThread, connect

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    queue TEXT NOT NULL,
    name TEXT NOT NULL,
    parent_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_state_queue ON tasks (state, queue, seq);
CREATE INDEX IF NOT EXISTS tasks_seq ON tasks (seq);
CREATE INDEX IF NOT EXISTS tasks_parent ON tasks (parent_id) WHERE parent_id != '';
CREATE INDEX IF NOT EXISTS tasks_job ON tasks (job_id, seq) WHERE job_id != '';
"""

_COLUMNS = "id, state, queue, name, parent_id, job_id, seq, version, doc"
_LIVE = (TaskState.PENDING.value, TaskState.RUNNING.value)


def _encode(task: Task) -> tuple[Any, ...]:
    refuse_oversized(task)  # the same limit as MongoDB's, so both stores refuse alike
    doc = to_doc(task)
    text = json.dumps(doc, default=lambda v: v.isoformat(), ensure_ascii=False)
    return (
        task.id,
        task.state.value,
        task.queue,
        task.name,
        task.parent_id,
        task.job_id,
        task.seq,
        task.version,
        text,
    )


def _decode(text: str) -> Task:
    return from_doc(json.loads(text), datetime.fromisoformat)


class SqliteRepository:
    def __init__(self, path: str) -> None:
        self._path = path
        self._thread = SqliteThread("sqlite")
        self._call = self._thread.call
        self._db = self._thread.db
        self._pending: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await self._call(self._open)

    def _open(self) -> None:
        self._thread.conn = connect(self._path, SCHEMA)

    # -- group commit ------------------------------------------------------------------

    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((op, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                outcomes = await self._call(self._commit, [op for op, _ in batch])
            except Exception as exc:  # the whole transaction failed: tell every caller
                outcomes = [exc] * len(batch)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    def _commit(self, ops: list[Callable[[sqlite3.Connection], Any]]) -> list[Any]:
        conn = self._db()
        outcomes: list[Any] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for op in ops:
                conn.execute("SAVEPOINT op")
                try:
                    outcomes.append(op(conn))
                    conn.execute("RELEASE op")
                except (sqlite3.IntegrityError, AlreadyExists) as exc:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    if isinstance(exc, AlreadyExists):
                        outcomes.append(exc)
                    else:
                        outcomes.append(AlreadyExists(f"task id already exists ({exc})"))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return outcomes

    # -- port --------------------------------------------------------------------------

    async def insert(self, tasks: Sequence[Task]) -> None:
        rows = [_encode(t) for t in tasks]

        def op(conn: sqlite3.Connection) -> None:
            before = conn.total_changes
            try:
                conn.executemany(f"INSERT INTO tasks ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)", rows)
            except sqlite3.IntegrityError:
                # executemany stops at the first clash: the rows before it went in.
                clash = rows[conn.total_changes - before][0]
                raise AlreadyExists(f"task {clash} already exists") from None

        await self._write(op)

    async def delete(self, task_ids: Sequence[str]) -> None:
        ids = [(task_id,) for task_id in task_ids]

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany("DELETE FROM tasks WHERE id = ?", ids)

        await self._write(op)

    async def save(self, task: Task) -> bool:
        row = _encode(task)

        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE tasks SET state=?, queue=?, name=?, parent_id=?, job_id=?, seq=?,"
                " version=?, doc=? WHERE id=? AND version<?",
                (*row[1:], task.id, task.version),
            )
            return cur.rowcount == 1

        return await self._write(op)

    async def get(self, task_id: str) -> Task | None:
        found = await self.get_many([task_id])
        return found.get(task_id)

    async def get_many(self, task_ids: Sequence[str]) -> dict[str, Task]:
        ids = list(dict.fromkeys(task_ids))
        if not ids:
            return {}

        def read() -> list[tuple[str]]:
            marks = ",".join("?" * len(ids))
            sql = f"SELECT doc FROM tasks WHERE id IN ({marks})"
            return self._db().execute(sql, ids).fetchall()

        tasks = [_decode(doc) for (doc,) in await self._call(read)]
        return {t.id: t for t in tasks}

    async def query(self, flt: TaskFilter, limit: int, token: str) -> Page:
        where, args = _filter_sql(flt)
        if token:
            seq, _, last_id = token.partition(":")
            where.append("(seq < ? OR (seq = ? AND id < ?))")
            args += [int(seq), int(seq), last_id]
        sql = "SELECT doc FROM tasks"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC, id DESC LIMIT ?"
        rows = await self._call(lambda: self._db().execute(sql, [*args, limit + 1]).fetchall())
        tasks = [_decode(doc) for (doc,) in rows[:limit]]
        more = len(rows) > limit
        return Page(tasks, page_token(tasks[-1]) if more and tasks else "")

    async def children(self, parent_id: str) -> list[Task]:
        # The literal `!= ''` lets SQLite use the partial index on parent_id.
        sql = "SELECT doc FROM tasks WHERE parent_id = ? AND parent_id != '' ORDER BY seq"
        rows = await self._call(lambda: self._db().execute(sql, (parent_id,)).fetchall())
        return [_decode(doc) for (doc,) in rows]

    async def live(self, after_id: str, limit: int) -> list[Task]:
        sql = "SELECT doc FROM tasks WHERE state IN (?, ?) AND id > ? ORDER BY id LIMIT ?"
        args = (*_LIVE, after_id, limit)
        rows = await self._call(lambda: self._db().execute(sql, args).fetchall())
        return [_decode(doc) for (doc,) in rows]

    async def record_callback(self, task_id: str, status: str, attempts: int, error: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE tasks SET doc = json_set(doc, '$.callback_status', ?,"
                " '$.callback_attempts', ?, '$.callback_error', ?) WHERE id = ?",
                (status, attempts, error, task_id),
            )

        await self._write(op)

    async def run_write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run `op` in the next group commit (for the outbox sharing this database)."""
        return await self._write(op)

    async def run_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._call(lambda: fn(self._db()))

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self._thread.close()


def _filter_sql(flt: TaskFilter) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    if flt.states:
        where.append(f"state IN ({','.join('?' * len(flt.states))})")
        args += sorted(s.value for s in flt.states)
    for column in ("queue", "name", "parent_id", "job_id"):
        value = getattr(flt, column)
        if value:
            # `!= ''` matches the partial indexes' condition, so SQLite can use them.
            where.append(f"{column} = ? AND {column} != ''")
            args.append(value)
    return where, args
