"""Redis fire lock: `SET key 1 NX PX ttl`, so across any number of servers exactly one
wins a given (job, fire time). It keeps a small client of its own so the cron feature
does not reach into the broker adapter's internals.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import parse_url
from redis.exceptions import RedisError

from giobba_server.config import BrokerConfig, Config
from giobba_server.domain.errors import Unavailable

_TIMEOUT = 5.0


def _options(broker: BrokerConfig) -> dict[str, Any]:
    # The GIOBBA_BROKER_* overrides win over the URL's parts (redis-py's from_url would
    # let the URL win).
    options: dict[str, Any] = dict(parse_url(broker.url))
    overrides = {
        "port": broker.port,
        "db": broker.db,
        "username": broker.username or None,
        "password": broker.password or None,
    }
    options.update({k: v for k, v in overrides.items() if v is not None})
    options.setdefault("host", "localhost")
    options.update(socket_connect_timeout=_TIMEOUT, socket_timeout=_TIMEOUT)
    return options


class RedisFireLock:
    def __init__(self, client: Redis) -> None:
        self._client = client

    async def acquire(self, key: str, ttl_ms: int) -> bool:
        try:
            return bool(await self._client.set(key, "1", nx=True, px=max(ttl_ms, 1)))
        except RedisError as exc:
            raise Unavailable(f"redis fire lock: {exc}") from exc

    async def close(self) -> None:
        await self._client.aclose()


async def open_redis_lock(
    config: Config, closers: list[Callable[[], Awaitable[None]]]
) -> RedisFireLock:
    lock = RedisFireLock(Redis(connection_pool=ConnectionPool(**_options(config.broker))))
    closers.append(lock.close)
    return lock
