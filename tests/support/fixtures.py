"""Pytest fixtures for the real services; import them from ``tests/conftest.py``.

The session fixtures start one server per test session (per xdist worker).
A server that cannot start fails the tests that need it (never a skip).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol, TypeVar

import pymongo
import pytest

from tests.support.services import (
    MongoServer,
    RedisServer,
    ServiceUnavailableError,
    require_service,
)

__all__ = ["clean_redis", "mongo_database", "mongo_server", "redis_server", "stoppable_mongo"]


class _Service(Protocol):
    def start(self) -> None: ...
    def close(self) -> None: ...


S = TypeVar("S", bound=_Service)


@contextlib.contextmanager
def running(server: S, kind: str) -> Iterator[S]:
    """`server` started, or the test failed (``require_service``: a skip only outside
    CI); closed afterwards either way."""
    try:
        server.start()
    except ServiceUnavailableError as exc:
        server.close()
        require_service(kind, str(exc))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with running(RedisServer(), "redis") as server:
        yield server


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[MongoServer]:
    with running(MongoServer(), "mongo") as server:
        yield server


@pytest.fixture
def stoppable_mongo() -> Iterator[MongoServer]:
    """A local FerretDB of this test's own, even when GIOBBA_TEST_MONGO_URL names an
    external server: outage tests stop and start it."""
    with running(MongoServer(use_env=False), "mongo") as server:
        yield server


@pytest.fixture
def clean_redis(redis_server: RedisServer) -> RedisServer:
    """The session Redis, running (a test may have stopped it) and empty."""
    if not redis_server.is_running:
        redis_server.start()
    redis_server.flushall()
    return redis_server


@pytest.fixture
def mongo_database(mongo_server: MongoServer) -> Iterator[str]:
    """A database name of this test's own on the session server; dropped afterwards."""
    if not mongo_server.is_running:
        mongo_server.start()
    name = mongo_server.database_name()
    yield name
    if not mongo_server.is_running:
        mongo_server.start()
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        mongo_server.url, serverSelectionTimeoutMS=10_000
    )
    try:
        client.drop_database(name)
    finally:
        client.close()
