"""E2E fixtures: a fresh stack per test, on each backend.

`embedded` is the in-process broker + SQLite; `redis-mongo` is the production pair: the
session's real redis-server (flushed per test) and MongoDB-wire server (a database of the
test's own).
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Stack, stack

BACKENDS = ["embedded", "redis-mongo"]


@pytest.fixture(params=BACKENDS)
def backend_urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(database_url, broker_url); empty strings mean the embedded defaults."""
    if request.param == "embedded":
        return f"sqlite:///{tmp_path / 'giobba.db'}", ""
    redis = request.getfixturevalue("clean_redis")
    if request.param == "redis-sqlite":
        return f"sqlite:///{tmp_path / 'giobba.db'}", redis.url
    mongo = request.getfixturevalue("mongo_server")
    database = request.getfixturevalue("mongo_database")
    return f"{mongo.url.rstrip('/')}/{database}", redis.url


@pytest.fixture
def st(backend_urls: tuple[str, str], tmp_path: Path) -> Iterator[Stack]:
    database_url, broker_url = backend_urls
    with stack(tmp_path, database_url=database_url, broker_url=broker_url) as s:
        s.start_server()
        yield s
