"""Redis fire lock: `SET key 1 NX PX ttl`, so across any number of servers exactly one
wins a given (job, fire time). It keeps a small client of its own so the cron feature
does not reach into the broker adapter's internals (the connection settings are shared).
"""

from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from giobba_server.broker.redis_backend import make_client
from giobba_server.config import Config
from giobba_server.domain.errors import Unavailable


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
    lock = RedisFireLock(make_client(config.broker))
    closers.append(lock.close)
    return lock
