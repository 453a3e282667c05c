"""Helpers for the Repository contract suite: a task factory and adapter openers.

Kept out of conftest.py so the contract directory's conftest stays free for other suites.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from giobba_server.config import Config, DatabaseConfig
from giobba_server.domain.task import Hold, StartMode, Task, TaskState
from giobba_server.store.mongo import MongoRepository, open_mongo
from giobba_server.store.sqlite import SqliteRepository

# Microseconds on purpose: every store must give back exactly what it was given.
T0 = datetime(2026, 3, 1, 9, 30, 15, 123_456, tzinfo=UTC)


def make_task(task_id: str, seq: int = 1, **changes: Any) -> Task:
    base = Task(
        id=task_id,
        name="send-mail",
        payload='{"to":"a@example.com"}',
        queue="default",
        state=TaskState.PENDING,
        priority=5,
        eta=T0,
        created_at=T0,
        updated_at=T0,
        seq=seq,
    )
    return base.evolve(**changes)


def rich_task(task_id: str) -> Task:
    """A task with every optional field set, to catch a field a store drops or mangles."""
    return make_task(
        task_id,
        seq=1_780_000_000_123_456,
        payload='{"a.b": 1, "$x": 2, "ünï": "✓", "big": 123456789012345678901234567890}',
        state=TaskState.RUNNING,
        priority=10,
        start_mode=StartMode.MANUAL,
        parent_id="parent-1",
        schedule="*/5 * * * *",
        is_schedule_active=True,
        job_id="job-1",
        error="boom: ✗",
        started_at=T0 + timedelta(seconds=1, microseconds=1),
        completed_at=None,
        expires_at=T0 + timedelta(days=2, microseconds=7),
        result='{"$ok": true, "x.y": [1.5, null]}',
        retries=2,
        max_retries=5,
        attempts=3,
        scheduler_id="server-1",
        worker_id="worker-✓",
        callback="https://example.com/done",
        callback_err="https://example.com/fail",
        timeout=timedelta(seconds=2.5),
        retry_backoff=timedelta(milliseconds=250),
        lease_token="tok-1",
        version=7,
        holds=frozenset({Hold.MANUAL, Hold.PARENT}),
    )


Closer = Callable[[], Awaitable[None]]


@asynccontextmanager
async def sqlite_repository(tmp_path: Path) -> AsyncIterator[SqliteRepository]:
    repo = SqliteRepository(str(tmp_path / "giobba.db"))
    await repo.open()
    try:
        yield repo
    finally:
        await repo.close()


@asynccontextmanager
async def mongo_repository(url: str, database: str) -> AsyncIterator[MongoRepository]:
    closers: list[Closer] = []
    repo = await open_mongo(Config(database=DatabaseConfig(url=url, name=database)), closers)
    assert isinstance(repo, MongoRepository)
    try:
        yield repo
    finally:
        for closer in reversed(closers):
            await closer()
