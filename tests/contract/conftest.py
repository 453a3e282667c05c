"""Adapter fixtures and helpers shared by the live-state contract suites."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis

from giobba_server.broker.redis_backend import make_client
from giobba_server.config import BrokerConfig
from giobba_server.domain.clock import now_ms
from tests.support.services import RedisServer


class Clock:
    """The real clock plus an offset the test can move forward: waits that need real
    time (wake on ETA) still work, and lease or expiry deadlines can be jumped past."""

    def __init__(self) -> None:
        self.offset = 0

    def __call__(self) -> int:
        return now_ms() + self.offset

    def advance(self, ms: int) -> None:
        self.offset += ms


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def redis_client(clean_redis: RedisServer) -> AsyncIterator[Redis]:
    client = make_client(BrokerConfig(url=clean_redis.url))
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def redis_factory(clean_redis: RedisServer) -> AsyncIterator[Callable[[], Redis]]:
    """More clients on the same Redis, as separate server processes would have."""
    clients: list[Redis] = []

    def make() -> Redis:
        clients.append(make_client(BrokerConfig(url=clean_redis.url)))
        return clients[-1]

    yield make
    for client in clients:
        await client.aclose()


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Wait for a condition with a deadline, yielding to the loop between checks."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
