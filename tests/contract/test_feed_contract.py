"""The Feed and Registry ports' contracts, run against every adapter."""

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis

from giobba_server.broker.memory_feed import MemoryFeed, MemoryRegistry
from giobba_server.broker.redis_feed import (
    ACTIVITY_CHANNEL,
    RedisFeed,
    RedisRegistry,
    cursor_of,
    stream_id,
)
from giobba_server.domain.clock import from_ms
from giobba_server.domain.errors import FailedPrecondition
from giobba_server.domain.ports import ActivityEvent, Feed, Registry, WorkerStatus
from giobba_server.domain.task import TaskState
from giobba_server.store.sqlite_feed import SqliteFeed
from tests.contract.conftest import Clock

FeedFactory = Callable[[int], Awaitable[Feed]]


def event(n: int, state: TaskState = TaskState.RUNNING) -> ActivityEvent:
    return ActivityEvent(
        task_id=f"task-{n}",
        name="echo",
        queue="q",
        old_state=TaskState.PENDING,
        new_state=state,
        kind="STARTED",
        time=datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        worker_id="w1",
        attempt=2,
        error="",
        job_id="",
    )


async def take(events: AsyncIterator[ActivityEvent], n: int) -> list[ActivityEvent]:
    async def collect() -> list[ActivityEvent]:
        return [await anext(events) for _ in range(n)]

    return await asyncio.wait_for(collect(), 10)


class FeedContract:
    @pytest.fixture
    def make_feed(self) -> FeedFactory:
        raise NotImplementedError

    @pytest.fixture
    async def feed(self, make_feed: FeedFactory) -> Feed:
        return await make_feed(100_000)

    async def test_cursors_strictly_increase(self, feed: Feed) -> None:
        assert await feed.head() == 0
        await feed.publish([event(1), event(2)])
        await feed.publish([event(3)])
        await feed.publish([])
        got = await take(feed.watch(0), 3)
        cursors = [e.cursor for e in got]
        assert cursors == sorted(set(cursors))
        assert cursors[0] > 0
        assert await feed.head() == cursors[-1]

    async def test_events_round_trip(self, feed: Feed) -> None:
        sent = [event(1), event(2, TaskState.COMPLETED)]
        sent[1] = ActivityEvent(
            **{**sent[1].__dict__, "old_state": None, "error": "bad ✓", "job_id": "j"}
        )
        await feed.publish(sent)
        got = await take(feed.watch(0), 2)
        assert [e.__dict__ | {"cursor": 0} for e in got] == [e.__dict__ for e in sent]

    async def test_replay_then_live_without_gap_or_duplicate(self, feed: Feed) -> None:
        await feed.publish([event(n) for n in range(3)])
        start = await feed.head()
        await feed.publish([event(n) for n in range(3, 8)])
        events = feed.watch(start)
        try:
            got = await take(events, 2)  # replaying
            for n in range(8, 20):  # publishing while the reader crosses over to live
                await feed.publish([event(n)])
                got.extend(await take(events, 1 if n % 2 else 0))
            got.extend(await take(events, 20 - 3 - len(got)))
        finally:
            await events.aclose()
        assert [e.task_id for e in got] == [f"task-{n}" for n in range(3, 20)]
        assert all(a.cursor < b.cursor for a, b in itertools.pairwise(got))

    async def test_watch_none_sees_only_new_events(self, feed: Feed) -> None:
        await feed.publish([event(1)])
        old = await feed.head()
        events = feed.watch(None)
        first = asyncio.ensure_future(anext(events))
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            n = 100
            while not first.done():  # keep publishing until the watcher has started
                assert loop.time() < deadline, "watch(None) saw nothing new"
                await feed.publish([event(n)])
                n += 1
                await asyncio.wait([first], timeout=0.02)
            got = first.result()
        finally:
            first.cancel()
            await events.aclose()
        assert got.cursor > old
        assert got.task_id != "task-1"

    async def test_cursor_older_than_retention_is_refused(self, make_feed: FeedFactory) -> None:
        feed = await make_feed(10)
        await feed.publish([event(0)])
        first = await feed.head()
        for n in range(1, 60):
            await feed.publish([event(n)])
        with pytest.raises(FailedPrecondition, match="older than the retained history"):
            await anext(feed.watch(first))
        # The newest `retention` events stay replayable, and 0 means "all you have".
        head = await feed.head()
        recent = await take(feed.watch(0), 10)
        assert recent[-1].cursor == head
        from_recent = await take(feed.watch(recent[0].cursor), 9)
        assert [e.cursor for e in from_recent] == [e.cursor for e in recent[1:]]

    async def test_future_cursor_waits_for_newer_events(self, feed: Feed) -> None:
        await feed.publish([event(1)])
        head = await feed.head()
        events = feed.watch(head)
        nxt = asyncio.ensure_future(anext(events))
        try:
            await feed.publish([event(2)])
            got = await asyncio.wait_for(nxt, 10)
        finally:
            nxt.cancel()
            await events.aclose()
        assert got.task_id == "task-2"

    @pytest.mark.parametrize("seconds", [0.05, 0.3])
    async def test_a_timeout_around_a_live_watch_ends_it_as_a_timeout(
        self, feed: Feed, seconds: float
    ) -> None:
        # WaitTask and the live CLI bound a watch with asyncio.timeout: the cancellation
        # must come out as a timeout, not as a backend error, and promptly.
        events = feed.watch(await feed.head())
        began = time.monotonic()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(seconds):
                async for _ in events:
                    pass
        await events.aclose()
        assert time.monotonic() - began < seconds + 2


class TestMemoryFeed(FeedContract):
    @pytest.fixture
    def make_feed(self) -> FeedFactory:
        async def make(retention: int) -> Feed:
            return MemoryFeed(retention)

        return make


class TestSqliteFeed(FeedContract):
    @pytest.fixture
    async def make_feed(self, tmp_path: Path) -> AsyncIterator[FeedFactory]:
        opened: list[SqliteFeed] = []

        async def make(retention: int) -> Feed:
            feed = SqliteFeed(str(tmp_path / f"feed-{len(opened)}.db"), retention)
            opened.append(feed)
            await feed.open()
            return feed

        yield make
        for feed in opened:
            await feed.close()

    async def test_cursors_continue_after_reopening(self, tmp_path: Path) -> None:
        path = str(tmp_path / "durable.db")
        feed = SqliteFeed(path, 20)
        await feed.open()
        for n in range(50):
            await feed.publish([event(n)])
        before = await take(feed.watch(0), 20)
        await feed.close()
        again = SqliteFeed(path, 20)
        await again.open()
        try:
            assert await again.head() == before[-1].cursor
            assert await take(again.watch(0), 20) == before
            with pytest.raises(FailedPrecondition, match="older than the retained history"):
                await anext(again.watch(1))
            await again.publish([event(99)])
            [new] = await take(again.watch(before[-1].cursor), 1)
            assert new.cursor == before[-1].cursor + 1
        finally:
            await again.close()


@pytest.mark.redis
class TestRedisFeed(FeedContract):
    @pytest.fixture
    def make_feed(self, redis_client: Redis) -> FeedFactory:
        async def make(retention: int) -> Feed:
            return RedisFeed(redis_client, retention, block_ms=1000)

        return make

    async def test_events_are_announced_on_the_seed_channel(
        self, feed: Feed, redis_client: Redis
    ) -> None:
        pubsub = redis_client.pubsub()
        try:
            await pubsub.subscribe(ACTIVITY_CHANNEL)
            await feed.publish([event(7)])
            message = None
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while message is None or message["type"] != "message":
                assert loop.time() < deadline
                message = await pubsub.get_message(timeout=1.0)
        finally:
            await pubsub.aclose()
        body = json.loads(message["data"])
        assert body["action_type"] == "ACTIVITY"
        payload = body["payload"]
        assert payload["task_id"] == "task-7"
        assert payload["old_state"] == "PENDING"
        assert payload["new_state"] == "RUNNING"
        assert payload["time"] == "2030-01-02T03:04:05.678000+00:00"
        assert payload["cursor"] == await feed.head()


def test_cursor_encoding_round_trips() -> None:
    for sid in ("0-1", "1700000000000-0", "1700000000000-1048575", "8000000000000-7"):
        assert stream_id(cursor_of(sid)) == sid
    assert (
        cursor_of("1700000000000-1") < cursor_of("1700000000000-2") < cursor_of("1700000000001-0")
    )


# -- registry --------------------------------------------------------------------------


def status(worker: str, clock: Clock, **changes: object) -> WorkerStatus:
    fields: dict[str, object] = {
        "id": worker,
        "host": "h",
        "pid": 42,
        "queues": ("a", "b"),
        "concurrency": 4,
        "running": ("t1",),
        "completed": 3,
        "failed": 1,
        "version": "0.1.0",
        "kind": "WORKER",
        "last_seen": from_ms(clock()),
        "started_at": from_ms(clock()) - timedelta(minutes=5),
    }
    fields.update(changes)
    return WorkerStatus(**fields)  # type: ignore[arg-type]


class RegistryContract:
    @pytest.fixture
    def registry(self, clock: Clock) -> Registry:
        raise NotImplementedError

    async def test_alive_lists_fresh_heartbeats(self, registry: Registry, clock: Clock) -> None:
        assert await registry.alive() == []
        b, a = status("w-b", clock), status("w-a", clock, started_at=None)
        await registry.beat(b, 1_000)
        await registry.beat(a, 5_000)
        assert await registry.alive() == [a, b]
        newer = status("w-b", clock, completed=9)
        await registry.beat(newer, 1_000)
        assert await registry.alive() == [a, newer]

    async def test_stale_heartbeats_drop_out(self, registry: Registry, clock: Clock) -> None:
        await registry.beat(status("short", clock), 1_000)
        await registry.beat(status("long", clock), 5_000)
        clock.advance(1_000)
        assert [s.id for s in await registry.alive()] == ["long"]
        clock.advance(4_000)
        assert await registry.alive() == []

    async def test_last_seen_is_the_latest_beat_while_listed(
        self, registry: Registry, clock: Clock
    ) -> None:
        assert await registry.last_seen("w") is None
        first = status("w", clock)
        await registry.beat(first, 1_000)
        assert await registry.last_seen("w") == first.last_seen
        clock.advance(600)
        later = status("w", clock, completed=4)
        await registry.beat(later, 1_000)
        await registry.beat(status("other", clock), 5_000)
        assert await registry.last_seen("w") == later.last_seen
        clock.advance(500)
        assert await registry.last_seen("w") == later.last_seen
        clock.advance(500)  # stale, whether or not alive() has swept it yet
        assert await registry.last_seen("w") is None
        assert [s.id for s in await registry.alive()] == ["other"]
        assert await registry.last_seen("w") is None

    async def test_watch_follows_heartbeats(self, registry: Registry, clock: Clock) -> None:
        beats = registry.watch()
        first = asyncio.ensure_future(anext(beats))
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            sent = status("watched", clock)
            while not first.done():  # beat until the watcher is listening
                assert loop.time() < deadline, "watch() saw no heartbeat"
                await registry.beat(sent, 1_000)
                await asyncio.wait([first], timeout=0.02)
            assert first.result() == sent
        finally:
            first.cancel()
            await beats.aclose()


class TestMemoryRegistry(RegistryContract):
    @pytest.fixture
    def registry(self, clock: Clock) -> Registry:
        return MemoryRegistry(clock)


@pytest.mark.redis
class TestRedisRegistry(RegistryContract):
    @pytest.fixture
    def registry(self, clock: Clock, redis_client: Redis) -> Registry:
        return RedisRegistry(redis_client, clock)
