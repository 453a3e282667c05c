"""Open the Redis live-state backend: one client shared by broker, feed and registry.

Connection settings come from `config.broker`: the URL (redis:// or rediss:// for TLS,
with user, password and db in it if wanted), then the port/db/username/password the
config took from GIOBBA_BROKER_* variables, which win over the URL's. redis-py's own
`from_url` lets the URL win over keyword arguments, hence the explicit merge here.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import parse_url

from giobba_server.broker.redis_broker import RedisBroker
from giobba_server.broker.redis_feed import RedisFeed, RedisRegistry
from giobba_server.broker.redis_scripts import SCRIPTS, Runner
from giobba_server.config import BrokerConfig, Config
from giobba_server.domain.errors import Unavailable
from giobba_server.domain.ports import Broker, Feed, Registry

CONNECT_TIMEOUT = 5.0
# Longer than any blocking read we issue (the feed's XREAD BLOCK is 5 s).
SOCKET_TIMEOUT = 15.0


def connection_options(broker: BrokerConfig) -> dict[str, Any]:
    options: dict[str, Any] = dict(parse_url(broker.url))
    overrides = {
        "port": broker.port,
        "db": broker.db,
        "username": broker.username or None,
        "password": broker.password or None,
    }
    options.update({k: v for k, v in overrides.items() if v is not None})
    options.setdefault("host", "localhost")
    options.update(
        decode_responses=True,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=SOCKET_TIMEOUT,
        health_check_interval=30,
    )
    return options


def make_client(broker: BrokerConfig) -> Redis:
    return Redis(connection_pool=ConnectionPool(**connection_options(broker)))


def _where(options: dict[str, Any]) -> str:
    """Host, port and db only: never the password."""
    return f"{options['host']}:{options.get('port', 6379)}/{options.get('db', 0)}"


async def open_redis(
    config: Config, closers: list[Callable[[], Awaitable[None]]]
) -> tuple[Broker, Feed, Registry]:
    options = connection_options(config.broker)
    client = make_client(config.broker)
    try:
        await client.ping()
        await Runner(client).load(SCRIPTS.all())
    except Exception as exc:
        await client.aclose()
        detail = exc.__cause__ if isinstance(exc, Unavailable) and exc.__cause__ else exc
        raise Unavailable(
            f"redis broker at {_where(options)} is unreachable: {type(detail).__name__}: {detail}"
        ) from None
    broker = RedisBroker(client)
    closers.append(client.aclose)
    closers.append(broker.close)  # closers run in reverse: the subscriber goes first
    return broker, RedisFeed(client, config.feed_retention), RedisRegistry(client)
