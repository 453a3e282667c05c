"""JobRepository and FireLock contracts, each run against every adapter: SQLite and a real
MongoDB-wire server for jobs, in-process and a real redis-server for the fire lock."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from giobba_server.broker.memory_lock import MemoryFireLock
from giobba_server.broker.redis_lock import open_redis_lock
from giobba_server.config import BrokerConfig, Config, DatabaseConfig
from giobba_server.domain.errors import AlreadyExists
from giobba_server.domain.job import Job, JobSpec, MissedPolicy, build_job
from giobba_server.domain.job_ports import FireLock, JobRepository, fire_key
from giobba_server.domain.spec import TaskSpec
from giobba_server.store.mongo_jobs import open_mongo_jobs
from giobba_server.store.sqlite_jobs import SqliteJobRepository
from tests.support.services import MongoServer, RedisServer

NOW = datetime(2026, 6, 1, 12, 0, 0, 250_000, tzinfo=UTC)


def make_job(schedule: str = "* * * * * *", offset: float = 0.0) -> Job:
    spec = JobSpec(
        task=TaskSpec(name="t", payload='{"k": [1, 2.5, "x"]}', timeout=timedelta(seconds=3)),
        schedule=schedule,
        timezone="Europe/Rome",
        expires_at=NOW + timedelta(days=30),
        missed_policy=MissedPolicy.RUN_ALL,
        run_expiry=timedelta(seconds=90),
    )
    # MongoDB keeps milliseconds: use whole-millisecond times so round trips compare equal.
    now = NOW + timedelta(milliseconds=int(offset * 1000))
    return build_job(spec, now=now, default_timezone="UTC")


@pytest.fixture(params=["sqlite", "mongo"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobRepository]:
    if request.param == "sqlite":
        repo = SqliteJobRepository(str(tmp_path / "jobs.db"))
        await repo.open()
        yield repo
        await repo.close()
        return
    server: MongoServer = request.getfixturevalue("mongo_server")
    name: str = request.getfixturevalue("mongo_database")
    closers: list[Callable[[], Awaitable[None]]] = []
    config = Config(database=DatabaseConfig(url=server.url, name=name))
    mongo = await open_mongo_jobs(config, closers)
    yield mongo
    for closer in reversed(closers):
        await closer()


async def test_insert_get_and_duplicate(store: JobRepository) -> None:
    job = make_job()
    await store.insert(job)
    assert await store.get(job.id) == job
    with pytest.raises(AlreadyExists):
        await store.insert(job)
    assert await store.get("00000000-0000-4000-8000-000000000000") is None


async def test_save_is_version_guarded(store: JobRepository) -> None:
    job = make_job()
    await store.insert(job)
    paused = job.evolve(is_active=False, next_execution=None, version=job.version + 1)
    assert await store.save(paused)
    stale = job.evolve(last_task_id="x", version=job.version + 1)
    assert not await store.save(stale)
    assert await store.get(job.id) == paused


async def test_delete(store: JobRepository) -> None:
    job = make_job()
    await store.insert(job)
    assert await store.delete(job.id)
    assert not await store.delete(job.id)
    assert not await store.save(job.evolve(version=job.version + 1))


async def test_upcoming_lists_active_jobs_earliest_first(store: JobRepository) -> None:
    hourly, every_second, daily = make_job("0 * * * *"), make_job(), make_job("0 0 * * *")
    for job in (daily, hourly, every_second):
        await store.insert(job)
    paused = every_second.evolve(is_active=False, version=every_second.version + 1)
    due = await store.upcoming(NOW + timedelta(hours=2), 10)
    assert [j.id for j in due] == [every_second.id, hourly.id]
    assert await store.save(paused)
    due = await store.upcoming(NOW + timedelta(days=2), 10)
    assert [j.id for j in due] == [hourly.id, daily.id]
    assert len(await store.upcoming(NOW + timedelta(days=2), 1)) == 1


async def test_pages_in_creation_order(store: JobRepository) -> None:
    created = [make_job(offset=i * 0.001) for i in range(5)]
    for job in reversed(created):
        await store.insert(job)
    seen: list[str] = []
    token = ""
    while True:
        page = await store.page(2, token)
        seen += [j.id for j in page.jobs]
        token = page.next_token
        if not token:
            break
    assert seen == [j.id for j in created]


@pytest.fixture(params=["memory", "redis"])
async def lock(request: pytest.FixtureRequest) -> AsyncIterator[FireLock]:
    if request.param == "memory":
        yield MemoryFireLock()
        return
    server: RedisServer = request.getfixturevalue("clean_redis")
    closers: list[Callable[[], Awaitable[None]]] = []
    redis_lock = await open_redis_lock(Config(broker=BrokerConfig(url=server.url)), closers)
    yield redis_lock
    await redis_lock.close()


async def test_one_winner_per_key(lock: FireLock) -> None:
    key = fire_key("job", NOW)
    results = await asyncio.gather(*(lock.acquire(key, 10_000) for _ in range(20)))
    assert results.count(True) == 1
    assert await lock.acquire(fire_key("job", NOW + timedelta(seconds=1)), 10_000)


async def test_a_key_is_free_again_after_its_ttl(lock: FireLock) -> None:
    key = fire_key("job-ttl", NOW)
    assert await lock.acquire(key, 50)
    deadline = asyncio.get_running_loop().time() + 5
    while not await lock.acquire(key, 50):
        assert asyncio.get_running_loop().time() < deadline, "the key never expired"
        await asyncio.sleep(0.01)
