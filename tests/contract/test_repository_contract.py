"""The Repository port's contract, run on every adapter (huey's shape: one class per port,
one subclass per adapter). A behaviour difference between SQLite and MongoDB is a bug.

`TestMongoOutage` runs on MongoDB only: the embedded SQLite file cannot go away.
"""

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from giobba_server.domain.document import MAX_DOCUMENT_BYTES
from giobba_server.domain.errors import AlreadyExists, InvalidArgument, Unavailable
from giobba_server.domain.payload import MAX_PAYLOAD_BYTES
from giobba_server.domain.ports import Repository, TaskFilter
from giobba_server.domain.task import TaskState
from giobba_server.store.mongo import redact, with_port
from tests.contract.repo_fixtures import (
    make_task,
    mongo_repository,
    rich_task,
    sqlite_repository,
)
from tests.support.services import MongoServer

MiB = 1024 * 1024


async def all_pages(repo: Repository, flt: TaskFilter, size: int) -> list[list[str]]:
    pages: list[list[str]] = []
    token = ""
    while True:
        page = await repo.query(flt, size, token)
        pages.append([t.id for t in page.tasks])
        if not page.next_token:
            return pages
        token = page.next_token
        assert len(pages) < 100, "pagination does not end"


class RepositoryContract:
    """Every test gets a fresh, empty repository from the subclass's `repo` fixture."""

    @pytest.fixture
    async def repo(self) -> AsyncIterator[Repository]:
        raise NotImplementedError
        yield

    @pytest.fixture
    async def twin(self) -> AsyncIterator[Repository]:
        """A second repository on the same store, as a second server would open it."""
        raise NotImplementedError
        yield

    # -- insert / get ------------------------------------------------------------------

    async def test_every_field_round_trips(self, repo: Repository) -> None:
        task = rich_task("t-rich")
        await repo.insert([task])
        assert await repo.get("t-rich") == task

    async def test_get_unknown_is_none(self, repo: Repository) -> None:
        assert await repo.get("nope") is None

    async def test_get_many_returns_the_known_ones(self, repo: Repository) -> None:
        await repo.insert([make_task(f"t{i}", seq=i) for i in range(5)])
        found = await repo.get_many(["t3", "nope", "t1", "t3"])
        assert sorted(found) == ["t1", "t3"]
        assert found["t3"] == make_task("t3", seq=3)
        assert await repo.get_many([]) == {}

    async def test_insert_nothing_is_fine(self, repo: Repository) -> None:
        await repo.insert([])
        assert (await repo.query(TaskFilter(), 10, "")).tasks == []

    async def test_duplicate_id_fails_the_whole_batch(self, repo: Repository) -> None:
        await repo.insert([make_task("old", seq=1)])
        batch = [make_task("new-1", seq=2), make_task("old", seq=3), make_task("new-2", seq=4)]
        with pytest.raises(AlreadyExists, match="old"):
            await repo.insert(batch)
        assert sorted(await repo.get_many(["old", "new-1", "new-2"])) == ["old"]
        assert await repo.get("old") == make_task("old", seq=1)

    async def test_duplicate_inside_a_batch_writes_nothing(self, repo: Repository) -> None:
        with pytest.raises(AlreadyExists, match="twice"):
            await repo.insert([make_task("a"), make_task("twice"), make_task("twice")])
        assert await repo.get_many(["a", "twice"]) == {}

    async def test_concurrent_inserts_all_land(self, repo: Repository) -> None:
        batches = [[make_task(f"c{i}-{j}", seq=i * 10 + j) for j in range(3)] for i in range(20)]
        await asyncio.gather(*(repo.insert(b) for b in batches))
        found = await repo.get_many([t.id for b in batches for t in b])
        assert len(found) == 60

    async def test_a_failed_insert_does_not_sink_concurrent_ones(self, repo: Repository) -> None:
        await repo.insert([make_task("taken")])
        results = await asyncio.gather(
            repo.insert([make_task("ok-1")]),
            repo.insert([make_task("x"), make_task("taken")]),
            repo.insert([make_task("ok-2")]),
            return_exceptions=True,
        )
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], AlreadyExists)
        assert sorted(await repo.get_many(["ok-1", "ok-2", "x", "taken"])) == [
            "ok-1",
            "ok-2",
            "taken",
        ]

    async def test_two_servers_write_the_same_store(
        self, repo: Repository, twin: Repository
    ) -> None:
        async def work(store: Repository, prefix: str) -> None:
            tasks = [make_task(f"{prefix}{i}", seq=i, version=1) for i in range(15)]
            await asyncio.gather(*(store.insert([t]) for t in tasks))
            saved = await asyncio.gather(*(store.save(t.evolve(version=2)) for t in tasks))
            assert all(saved)

        await asyncio.gather(work(repo, "one-"), work(twin, "two-"))
        ids = [f"{p}{i}" for p in ("one-", "two-") for i in range(15)]
        for store in (repo, twin):
            found = await store.get_many(ids)
            assert sorted(found) == sorted(ids)
            assert {t.version for t in found.values()} == {2}

    # -- delete --------------------------------------------------------------------------

    async def test_delete_removes_and_ignores_unknown(self, repo: Repository) -> None:
        await repo.insert([make_task("a"), make_task("b"), make_task("c")])
        await repo.delete(["a", "c", "nope"])
        assert sorted(await repo.get_many(["a", "b", "c"])) == ["b"]
        await repo.delete([])

    # -- save ----------------------------------------------------------------------------

    async def test_save_applies_only_newer_versions(self, repo: Repository) -> None:
        task = make_task("v", version=3)
        await repo.insert([task])
        newer = task.evolve(version=4, state=TaskState.RUNNING, worker_id="w1")
        assert await repo.save(newer) is True
        assert await repo.get("v") == newer
        assert await repo.save(task.evolve(version=4, error="same version")) is False
        assert await repo.save(task.evolve(version=2, error="older")) is False
        assert await repo.get("v") == newer

    async def test_save_never_creates(self, repo: Repository) -> None:
        assert await repo.save(make_task("ghost", version=9)) is False
        assert await repo.get("ghost") is None

    async def test_concurrent_saves_end_on_the_highest_version(self, repo: Repository) -> None:
        await repo.insert([make_task("race", version=0)])
        versions = list(range(1, 31))
        random.Random(7).shuffle(versions)
        outcomes = await asyncio.gather(
            *(repo.save(make_task("race", version=v, error=f"v{v}")) for v in versions)
        )
        stored = await repo.get("race")
        assert stored is not None and stored.version == 30 and stored.error == "v30"
        assert outcomes[versions.index(30)] is True
        # A save reported as applied was newer than every save applied before it.
        applied = [v for v, ok in zip(versions, outcomes, strict=True) if ok]
        assert applied == sorted(applied)

    async def test_concurrent_saves_of_many_tasks_each_report(self, repo: Repository) -> None:
        tasks = [make_task(f"m{i}", seq=i, version=5) for i in range(40)]
        await repo.insert(tasks)
        # Even ones move forward, odd ones are stale: each caller hears its own outcome.
        saves = [t.evolve(version=6 if i % 2 == 0 else 5, retries=1) for i, t in enumerate(tasks)]
        outcomes = await asyncio.gather(*(repo.save(t) for t in saves))
        assert outcomes == [i % 2 == 0 for i in range(40)]
        found = await repo.get_many([t.id for t in tasks])
        assert [found[t.id].version for t in tasks] == [6 if i % 2 == 0 else 5 for i in range(40)]

    async def test_result_with_awkward_keys_round_trips(self, repo: Repository) -> None:
        task = make_task("r", version=1)
        await repo.insert([task])
        result = '{"a.b": 1, "$x": 2, "ünï": "✓", "nested": {"$set": {"c.d": [1e300, -0.0]}}}'
        done = task.evolve(version=2, state=TaskState.COMPLETED, result=result)
        assert await repo.save(done) is True
        stored = await repo.get("r")
        assert stored is not None and stored.result == result

    # -- size limit ----------------------------------------------------------------------

    async def test_largest_payload_allowed_round_trips(self, repo: Repository) -> None:
        payload = '{"blob": "' + "é" * ((MAX_PAYLOAD_BYTES - 20) // 2) + '"}'
        assert len(payload.encode()) <= MAX_PAYLOAD_BYTES
        await repo.insert([make_task("big", payload=payload)])
        stored = await repo.get("big")
        assert stored is not None and stored.payload == payload

    async def test_oversized_document_is_refused_and_nothing_written(
        self, repo: Repository
    ) -> None:
        huge = '{"blob": "' + "x" * (MAX_DOCUMENT_BYTES + MiB) + '"}'
        with pytest.raises(InvalidArgument, match=str(MAX_DOCUMENT_BYTES)) as caught:
            await repo.insert([make_task("fine"), make_task("huge", payload=huge)])
        assert caught.value.field == "payload"
        assert await repo.get_many(["fine", "huge"]) == {}

    async def test_oversized_result_is_refused_and_task_unchanged(self, repo: Repository) -> None:
        half = '{"blob": "' + "y" * (9 * MiB) + '"}'
        task = make_task("halves", payload=half, version=1)
        await repo.insert([task])
        with pytest.raises(InvalidArgument, match="16 MiB") as caught:
            await repo.save(task.evolve(version=2, result=half))
        assert caught.value.field in ("payload", "result")
        stored = await repo.get("halves")
        assert stored is not None and stored.version == 1 and stored.result == ""

    # -- query ---------------------------------------------------------------------------

    async def test_query_pages_newest_first_through_seq_ties(self, repo: Repository) -> None:
        # seq ties (two servers, one microsecond) are broken by id, newest id first.
        seqs = {"a": 1, "b": 2, "c": 2, "d": 2, "e": 3, "f": 3, "g": 4, "h": 2}
        await repo.insert([make_task(i, seq=s) for i, s in seqs.items()])
        expected = ["g", "f", "e", "h", "d", "c", "b", "a"]
        for size in (1, 2, 3, 4, 8, 50):
            pages = await all_pages(repo, TaskFilter(), size)
            assert [i for page in pages for i in page] == expected, size
            assert all(len(page) == size for page in pages[:-1])
        # An exact multiple ends without an empty extra page.
        assert len(await all_pages(repo, TaskFilter(), 4)) == 2

    async def test_query_filters(self, repo: Repository) -> None:
        tasks = [
            make_task("p1", seq=1, queue="mail", name="send"),
            make_task("p2", seq=2, queue="mail", name="send", state=TaskState.RUNNING),
            make_task("p3", seq=3, queue="img", name="resize", state=TaskState.COMPLETED),
            make_task("c1", seq=4, queue="img", parent_id="p3", job_id="j1"),
            make_task("c2", seq=5, queue="mail", parent_id="p3", state=TaskState.FAILED),
            make_task("j2", seq=6, queue="mail", job_id="j1", state=TaskState.REVOKED),
        ]
        await repo.insert(tasks)

        async def ids(flt: TaskFilter) -> list[str]:
            return [t.id for t in (await repo.query(flt, 100, "")).tasks]

        live = frozenset({TaskState.PENDING, TaskState.RUNNING})
        assert await ids(TaskFilter(states=live)) == ["c1", "p2", "p1"]
        assert await ids(TaskFilter(queue="mail")) == ["j2", "c2", "p2", "p1"]
        assert await ids(TaskFilter(name="resize")) == ["p3"]
        assert await ids(TaskFilter(parent_id="p3")) == ["c2", "c1"]
        assert await ids(TaskFilter(job_id="j1")) == ["j2", "c1"]
        assert await ids(TaskFilter(states=live, queue="mail")) == ["p2", "p1"]
        assert await ids(TaskFilter(queue="mail", job_id="j1", parent_id="p3")) == []
        pages = await all_pages(repo, TaskFilter(queue="mail"), 3)
        assert pages == [["j2", "c2", "p2"], ["p1"]]

    async def test_query_sees_saved_state(self, repo: Repository) -> None:
        task = make_task("s", version=1)
        await repo.insert([task])
        await repo.save(task.evolve(version=2, state=TaskState.COMPLETED))
        done = TaskFilter(states=frozenset({TaskState.COMPLETED}))
        assert [t.id for t in (await repo.query(done, 10, "")).tasks] == ["s"]
        pending = TaskFilter(states=frozenset({TaskState.PENDING}))
        assert (await repo.query(pending, 10, "")).tasks == []

    # -- children / live -----------------------------------------------------------------

    async def test_children_in_submit_order(self, repo: Repository) -> None:
        await repo.insert(
            [
                make_task("parent", seq=1),
                make_task("k3", seq=7, parent_id="parent"),
                make_task("k1", seq=3, parent_id="parent"),
                make_task("k2", seq=3, parent_id="parent", state=TaskState.REVOKED),
                make_task("other", seq=4, parent_id="someone-else"),
            ]
        )
        assert [t.id for t in await repo.children("parent")] == ["k1", "k2", "k3"]
        assert await repo.children("k1") == []

    async def test_live_pages_pending_and_running_by_id(self, repo: Repository) -> None:
        states = [TaskState.PENDING, TaskState.RUNNING, TaskState.COMPLETED, TaskState.KILLED]
        # Mixed case and non-ASCII ids: every store orders by code point (binary).
        ids = ["b", "B", "a", "é", "Z", "0", "ä", "aa", "A-1", "z"]
        await repo.insert([make_task(i, seq=n, state=states[n % 4]) for n, i in enumerate(ids)])
        expected = sorted(i for n, i in enumerate(ids) if n % 4 < 2)
        assert [t.id for t in await repo.live("", 100)] == expected
        seen: list[str] = []
        after = ""
        while batch := await repo.live(after, 2):
            assert len(batch) <= 2
            seen += [t.id for t in batch]
            after = batch[-1].id
        assert seen == expected


class TestSqliteRepository(RepositoryContract):
    @pytest.fixture
    async def repo(self, tmp_path: Path) -> AsyncIterator[Repository]:
        async with sqlite_repository(tmp_path) as repo:
            yield repo

    @pytest.fixture
    async def twin(self, tmp_path: Path) -> AsyncIterator[Repository]:
        async with sqlite_repository(tmp_path) as repo:
            yield repo


@pytest.mark.mongo
class TestMongoRepository(RepositoryContract):
    @pytest.fixture
    async def repo(
        self, mongo_server: MongoServer, mongo_database: str
    ) -> AsyncIterator[Repository]:
        async with mongo_repository(mongo_server.url, mongo_database) as repo:
            yield repo

    @pytest.fixture
    async def twin(
        self, mongo_server: MongoServer, mongo_database: str
    ) -> AsyncIterator[Repository]:
        async with mongo_repository(mongo_server.url, mongo_database) as repo:
            yield repo


@pytest.mark.mongo
class TestMongoRepositoryGenericPath(RepositoryContract):
    """FerretDB is detected and gets one save per command; this runs the path real
    MongoDB takes (saves merged into bulk writes) on the same server, so both are proven."""

    @pytest.fixture
    async def repo(
        self, mongo_server: MongoServer, mongo_database: str
    ) -> AsyncIterator[Repository]:
        async with mongo_repository(mongo_server.url, mongo_database) as repo:
            repo.ferretdb = False
            yield repo

    @pytest.fixture
    async def twin(
        self, mongo_server: MongoServer, mongo_database: str
    ) -> AsyncIterator[Repository]:
        async with mongo_repository(mongo_server.url, mongo_database) as repo:
            repo.ferretdb = False
            yield repo


@pytest.fixture
def private_mongo() -> Iterator[MongoServer]:
    """A FerretDB of this test's own, so stopping it disturbs no other test."""
    server = MongoServer(use_env=False)
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.mark.mongo
class TestMongoOutage:
    """MongoDB only: the embedded SQLite file has no server to lose."""

    async def test_down_answers_unavailable_fast_then_recovers(
        self, private_mongo: MongoServer
    ) -> None:
        async with mongo_repository(private_mongo.url, "giobba_outage") as repo:
            task = make_task("before", version=1)
            await repo.insert([task])
            private_mongo.stop()
            calls: list[Callable[[], Awaitable[object]]] = [
                lambda: repo.get("before"),
                lambda: repo.get_many(["before", "x"]),
                lambda: repo.save(task.evolve(version=2)),
                lambda: repo.insert([make_task("during")]),
                lambda: repo.query(TaskFilter(), 10, ""),
                lambda: repo.live("", 10),
            ]
            for call in calls:
                started = time.monotonic()
                with pytest.raises(Unavailable, match="mongodb"):
                    await call()
                assert time.monotonic() - started < 8.0
            private_mongo.start()
            # Same repository object: pymongo reconnects, nothing broken was cached.
            assert await repo.get("before") == task
            assert await repo.save(task.evolve(version=2)) is True
            await repo.insert([make_task("after")])
            assert sorted(await repo.get_many(["before", "during", "after"])) == [
                "after",
                "before",
            ]


def test_port_override_and_redaction() -> None:
    assert with_port("mongodb://u:p@h1:1,h2/db?x=1", 9) == "mongodb://u:p@h1:9,h2:9/db?x=1"
    assert with_port("mongodb://[::1]:27017", 5) == "mongodb://[::1]:5"
    assert with_port("mongodb://h", None) == "mongodb://h"
    assert with_port("mongodb+srv://c.example.com/db", 9) == "mongodb+srv://c.example.com/db"
    assert redact("mongodb://user:s3cret@h:1/db?authSource=admin") == (
        "mongodb://h:1/db?authSource=admin"
    )
