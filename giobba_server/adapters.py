"""Pick the adapters named by the config: embedded (in-process + SQLite) or Redis/MongoDB.

Driver modules are imported only when their adapter is chosen, so the embedded default
never needs a Redis or MongoDB client to be importable at start-up.
"""

import fcntl
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from giobba_server.config import Config, ConfigError
from giobba_server.domain.job_ports import FireLock, JobRepository
from giobba_server.domain.outbox import Outbox
from giobba_server.domain.ports import Broker, Feed, Registry, Repository
from giobba_server.domain.signals import Signals


@dataclass
class Backends:
    broker: Broker
    repo: Repository
    feed: Feed
    registry: Registry
    # Called in reverse order on shutdown.
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Cron jobs: their store sits with the repository, their fire lock with the broker.
    jobs: JobRepository | None = None
    locks: FireLock | None = None
    # Cancel pushes between servers (kills reach a worker's stream wherever it is).
    signals: Signals | None = None
    # Callbacks owed, stored with the repository.
    outbox: Outbox | None = None

    async def close(self) -> None:
        for closer in reversed(self.closers):
            await closer()


async def _embedded_live(
    config: Config, closers: list[Callable[[], Awaitable[None]]]
) -> tuple[Broker, Feed, Registry]:
    from giobba_server.broker.memory import MemoryBroker  # noqa: PLC0415
    from giobba_server.broker.memory_feed import MemoryRegistry  # noqa: PLC0415
    from giobba_server.store.sqlite_feed import SqliteFeed, feed_path  # noqa: PLC0415

    # The feed outlives the process (a file beside the SQLite repository's, or beside
    # ~/.giobba/giobba.db when the repository is MongoDB), so cursors survive a restart.
    feed = SqliteFeed(feed_path(config.database.sqlite_path), config.feed_retention)
    await feed.open()
    closers.append(feed.close)
    return MemoryBroker(), feed, MemoryRegistry()


async def _live(
    config: Config, closers: list[Callable[[], Awaitable[None]]]
) -> tuple[Broker, Feed, Registry]:
    if config.broker.kind == "redis":
        from giobba_server.broker.redis_backend import open_redis  # noqa: PLC0415

        return await open_redis(config, closers)
    return await _embedded_live(config, closers)


async def _repository(config: Config, closers: list[Callable[[], Awaitable[None]]]) -> Repository:
    if config.database.kind == "mongodb":
        from giobba_server.store.mongo import open_mongo  # noqa: PLC0415

        return await open_mongo(config, closers)
    from giobba_server.store.sqlite import SqliteRepository  # noqa: PLC0415

    repo = SqliteRepository(config.database.sqlite_path)
    try:
        await repo.open()
    except (sqlite3.Error, OSError) as exc:
        await repo.close()
        raise ConfigError(
            "database.url", f"cannot open SQLite at {config.database.sqlite_path}: {exc}"
        ) from None
    closers.append(repo.close)
    return repo


async def _jobs(config: Config, closers: list[Callable[[], Awaitable[None]]]) -> JobRepository:
    if config.database.kind == "mongodb":
        from giobba_server.store.mongo_jobs import open_mongo_jobs  # noqa: PLC0415

        return await open_mongo_jobs(config, closers)
    from giobba_server.store.sqlite_jobs import SqliteJobRepository  # noqa: PLC0415

    jobs = SqliteJobRepository(config.database.sqlite_path)
    await jobs.open()
    closers.append(jobs.close)
    return jobs


async def _locks(config: Config, closers: list[Callable[[], Awaitable[None]]]) -> FireLock:
    if config.broker.kind == "redis":
        from giobba_server.broker.redis_lock import open_redis_lock  # noqa: PLC0415

        return await open_redis_lock(config, closers)
    from giobba_server.broker.memory_lock import MemoryFireLock  # noqa: PLC0415

    return MemoryFireLock()


async def _signals(config: Config, closers: list[Callable[[], Awaitable[None]]]) -> Signals:
    if config.broker.kind == "redis":
        from giobba_server.broker.redis_signals import open_redis_signals  # noqa: PLC0415

        return await open_redis_signals(config, closers)
    from giobba_server.broker.memory_signals import MemorySignals  # noqa: PLC0415

    return MemorySignals()


async def _outbox(repo: Repository) -> Outbox:
    """The outbox lives in the repository's store and goes through its write path."""
    from giobba_server.store.sqlite import SqliteRepository  # noqa: PLC0415

    if isinstance(repo, SqliteRepository):
        from giobba_server.store.sqlite_outbox import SqliteOutbox  # noqa: PLC0415

        embedded = SqliteOutbox(repo)
        await embedded.open()
        return embedded
    from giobba_server.store.mongo import MongoRepository  # noqa: PLC0415
    from giobba_server.store.mongo_outbox import MongoOutbox  # noqa: PLC0415

    assert isinstance(repo, MongoRepository)
    production = MongoOutbox(repo)
    await production.open()
    return production


def _claim_embedded_database(config: Config, closers: list[Callable[[], Awaitable[None]]]) -> None:
    """With the in-process broker, live state lives in this process: a second server on
    the same SQLite file would restore the first one's tasks into its own broker and run
    them twice. An exclusive lock beside the file refuses that second server."""
    path = config.database.sqlite_path
    if config.broker.kind != "memory" or config.database.kind != "sqlite" or path == ":memory:":
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handle = open(f"{path}.lock", "a")  # noqa: SIM115 - held for the server's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ConfigError(
            "database.url",
            f"{path} is in use by another giobba server; the embedded default runs one "
            "server per database (share Redis and MongoDB to run several)",
        ) from None

    async def release() -> None:
        handle.close()

    closers.append(release)


async def open_backends(config: Config) -> Backends:
    closers: list[Callable[[], Awaitable[None]]] = []
    _claim_embedded_database(config, closers)
    repo = await _repository(config, closers)
    try:
        broker, feed, registry = await _live(config, closers)
        jobs = await _jobs(config, closers)
        locks = await _locks(config, closers)
        signals = await _signals(config, closers)
        outbox = await _outbox(repo)
    except BaseException:
        for closer in reversed(closers):
            await closer()
        raise
    return Backends(broker, repo, feed, registry, closers, jobs, locks, signals, outbox)
