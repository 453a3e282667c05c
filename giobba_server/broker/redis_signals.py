"""Cancel signals across servers on the seed's `giobba-services` channel.

Messages are `{"action_type": "KILL", "payload": {"worker_id", "task_id", "reason"}}`.
Other action types on the channel are someone else's and ignored here. Pub/sub is lossy
when a subscriber reconnects; that is acceptable because the broker also owes every
cancellation to the worker's next heartbeat. A client of its own keeps the blocking
subscriber off the broker's connection pool.
"""

import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from giobba_server.broker.redis_backend import make_client
from giobba_server.config import Config
from giobba_server.domain.errors import Unavailable
from giobba_server.domain.ports import CancelReason
from giobba_server.domain.signals import CancelNotice
from giobba_server.waits import raise_if_cancelling

SERVICES_CHANNEL = "giobba-services"
KILL = "KILL"
POLL = 5.0  # bounded reads, so a dead connection surfaces instead of blocking forever


def encode(notice: CancelNotice) -> str:
    payload = {"worker_id": notice.worker_id, "task_id": notice.task_id, "reason": notice.reason}
    return json.dumps({"action_type": KILL, "payload": payload})


def decode(raw: str) -> CancelNotice | None:
    """The notice in a channel message, or None for other commands and foreign junk."""
    try:
        data: Any = json.loads(raw)
        if data.get("action_type") != KILL:
            return None
        payload = data["payload"]
        return CancelNotice(
            str(payload["worker_id"]),
            str(payload["task_id"]),
            CancelReason(payload.get("reason", CancelReason.KILLED)),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


class RedisSignals:
    def __init__(self, client: Redis) -> None:
        self._client = client

    async def publish_cancel(self, notice: CancelNotice) -> None:
        try:
            await self._client.publish(SERVICES_CHANNEL, encode(notice))
        except RedisError as exc:
            raise Unavailable(f"redis signals: {exc}") from exc

    async def watch_cancels(self) -> AsyncGenerator[CancelNotice, None]:
        pubsub: PubSub = self._client.pubsub()
        try:
            await pubsub.subscribe(SERVICES_CHANNEL)
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL)
                raise_if_cancelling()
                if message is None or message["type"] != "message":
                    continue
                notice = decode(str(message["data"]))
                if notice is not None:
                    yield notice
        except RedisError as exc:
            raise Unavailable(f"redis signals: {exc}") from exc
        finally:
            await pubsub.aclose()

    async def close(self) -> None:
        await self._client.aclose()


async def open_redis_signals(
    config: Config, closers: list[Callable[[], Awaitable[None]]]
) -> RedisSignals:
    signals = RedisSignals(make_client(config.broker))
    closers.append(signals.close)
    return signals
