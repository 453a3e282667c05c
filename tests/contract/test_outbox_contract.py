"""The Outbox port's contract (and Repository.record_callback), on SQLite and MongoDB."""

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from giobba_server.domain.callback import CallbackStatus, OutboxEntry
from giobba_server.domain.outbox import Outbox
from giobba_server.domain.ports import Repository
from giobba_server.domain.task import TaskState
from giobba_server.store.mongo_outbox import MongoOutbox
from giobba_server.store.sqlite_outbox import SqliteOutbox
from tests.contract.repo_fixtures import make_task, mongo_repository, sqlite_repository
from tests.support.services import MongoServer


def entry(n: int, due_ms: int = 1000, **changes: object) -> OutboxEntry:
    base = OutboxEntry(
        id=f"delivery-{n}",
        task_id=f"task-{n}",
        url="https://example.com/hook?x=1",
        event="COMPLETED",
        body='{"id":"task","result":{"big":123456789012345678901234567890,"s":"✓"}}',
        created_ms=500,
        due_ms=due_ms,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


class OutboxContract:
    @pytest.fixture
    async def stores(self) -> AsyncIterator[tuple[Outbox, Repository]]:
        raise NotImplementedError
        yield

    async def test_add_get_round_trips_and_is_idempotent(
        self, stores: tuple[Outbox, Repository]
    ) -> None:
        outbox, _ = stores
        first = entry(1)
        await outbox.add(first)
        await outbox.add(replace(first, attempts=5, url="https://other"))  # kept: first
        assert await outbox.get(first.id) == first
        assert await outbox.get("nope") is None

    async def test_pending_is_earliest_due_first_and_limited(
        self, stores: tuple[Outbox, Repository]
    ) -> None:
        outbox, _ = stores
        for n, due in enumerate([30, 10, 20, 40]):
            await outbox.add(entry(n, due))
        assert [e.due_ms for e in await outbox.pending(3)] == [10, 20, 30]

    async def test_update_and_remove(self, stores: tuple[Outbox, Repository]) -> None:
        outbox, _ = stores
        await outbox.add(entry(1, 10))
        await outbox.add(entry(2, 20))
        later = replace(entry(1, 10), attempts=2, due_ms=99, last_error="HTTP 503")
        await outbox.update(later)
        assert await outbox.get(later.id) == later
        assert [e.id for e in await outbox.pending(10)] == ["delivery-2", "delivery-1"]
        await outbox.remove("delivery-2")
        await outbox.remove("delivery-2")  # removing twice is fine
        assert [e.id for e in await outbox.pending(10)] == ["delivery-1"]

    async def test_record_callback_sets_only_the_callback_fields(
        self, stores: tuple[Outbox, Repository]
    ) -> None:
        _, repo = stores
        task = make_task("t-1", state=TaskState.COMPLETED, version=4, result='{"a": 1}')
        await repo.insert([task])
        await repo.record_callback("t-1", CallbackStatus.PENDING, 1, "HTTP 500")
        await repo.record_callback("t-1", CallbackStatus.DELIVERED, 2, "")
        await repo.record_callback("unknown", CallbackStatus.FAILED, 1, "x")  # no error
        got = await repo.get("t-1")
        assert got == task.evolve(callback_status="DELIVERED", callback_attempts=2)
        # The version is untouched: a later versioned save still applies.
        assert await repo.save(got.evolve(version=5)) if got else False


class TestSqliteOutbox(OutboxContract):
    @pytest.fixture
    async def stores(self, tmp_path: Path) -> AsyncIterator[tuple[Outbox, Repository]]:
        async with sqlite_repository(tmp_path) as repo:
            outbox = SqliteOutbox(repo)
            await outbox.open()
            yield outbox, repo


@pytest.mark.mongo
class TestMongoOutbox(OutboxContract):
    @pytest.fixture
    async def stores(
        self, mongo_server: MongoServer, mongo_database: str
    ) -> AsyncIterator[tuple[Outbox, Repository]]:
        async with mongo_repository(mongo_server.url, mongo_database) as repo:
            outbox = MongoOutbox(repo)
            await outbox.open()
            yield outbox, repo
