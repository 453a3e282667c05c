"""RedisFeed and RedisRegistry: the activity feed and live workers, shared by all servers.

The feed is a Redis Stream. A cursor must be one strictly increasing int64, and a stream
id is `ms-seq`, so the cursor is `ms * 2**20 + seq` (seq stays far below 2**20: that
would take a million events in one millisecond) and decodes back for XREAD. Retention is
exact, not `MAXLEN ~`: the publish script trims in batches (a tenth of the retention) and
records the newest id it dropped, so a reader's cursor is refused exactly when events
after it are gone, as with the in-process feed. Each event is also announced as JSON on
the seed's `giobba-activities` channel, by the same script, cursor included.

Registry heartbeats live in a hash plus a ZSET by expiry on the receiving server's clock;
`alive()` drops stale ones in one script; `watch()` follows `giobba-heartbeats`.
"""

import json
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from giobba_server.broker.redis_scripts import ALIVE_SCRIPT, FEED_SCRIPT, Call, Runner, translated
from giobba_server.domain.activity_codec import event_fields, event_from_fields
from giobba_server.domain.clock import now_ms, to_ms
from giobba_server.domain.errors import FailedPrecondition
from giobba_server.domain.ports import ActivityEvent, WorkerStatus
from giobba_server.waits import raise_if_cancelling

ACTIVITY_STREAM = "giobba:{activity}:stream"
ACTIVITY_TRIMMED = "giobba:{activity}:trimmed"
ACTIVITY_CHANNEL = "giobba-activities"
HEARTBEAT_CHANNEL = "giobba-heartbeats"
WORKERS_KEY = "giobba:{registry}:workers"
WORKERS_EXPIRY_KEY = "giobba:{registry}:expiry"
SEQ_BITS = 20
READ_BATCH = 500


def cursor_of(stream_id: str) -> int:
    ms, _, seq = stream_id.partition("-")
    return (int(ms) << SEQ_BITS) + int(seq)


def stream_id(cursor: int) -> str:
    return f"{cursor >> SEQ_BITS}-{cursor & ((1 << SEQ_BITS) - 1)}"


def _announcement_prefix(fields: dict[str, Any]) -> str:
    """The seed's pub/sub shape, open-ended: the script appends the cursor and '}}'."""
    payload = json.dumps(fields)
    return '{"action_type": "ACTIVITY", "payload": ' + payload[:-1] + ', "cursor": '


def _event(entry_id: str, raw: str) -> ActivityEvent:
    return event_from_fields(json.loads(raw), cursor_of(entry_id))


class RedisFeed:
    def __init__(self, client: Redis, retention: int = 100_000, block_ms: int = 5000) -> None:
        self._client = client
        self._run = Runner(client)
        self._retention = retention
        self._slack = max(retention // 10, 1)
        self._block_ms = block_ms

    async def publish(self, events: Sequence[ActivityEvent]) -> None:
        if not events:
            return
        args: list[str | int] = [self._retention, self._slack, ACTIVITY_CHANNEL]
        for event in events:
            fields = event_fields(event)
            args.extend([json.dumps(fields), _announcement_prefix(fields)])
        await self._run.call(FEED_SCRIPT, [ACTIVITY_STREAM, ACTIVITY_TRIMMED], args)

    async def head(self) -> int:
        newest = await self._newest_id()
        return 0 if newest is None else cursor_of(newest)

    async def _newest_id(self) -> str | None:
        with translated("feed head"):
            entries = await self._client.xrevrange(ACTIVITY_STREAM, count=1)
        return str(entries[0][0]) if entries else None

    async def _check_retained(self, cursor: int) -> None:
        calls = [
            Call(None, [ACTIVITY_TRIMMED], [], "GET"),
            Call(None, [ACTIVITY_STREAM], ["-", "+", "COUNT", 1], "XRANGE"),
        ]
        trimmed, oldest = await self._run.many(calls)
        if cursor > 0 and trimmed and cursor < cursor_of(trimmed):
            first = cursor_of(oldest[0][0]) if oldest else cursor_of(trimmed) + 1
            raise FailedPrecondition(
                f"cursor {cursor} is older than the retained history (oldest is {first})"
            )

    async def watch(self, from_cursor: int | None) -> AsyncGenerator[ActivityEvent, None]:
        if from_cursor is None:
            last = await self._newest_id() or "0-0"
        else:
            await self._check_retained(from_cursor)
            last = stream_id(max(from_cursor, 0))
        while True:
            # XREAD from the last id seen: replay and live are one loop, so nothing is
            # missed or repeated where one ends and the other begins.
            with translated("feed read"):
                reply: Any = await self._client.xread(
                    {ACTIVITY_STREAM: last}, count=READ_BATCH, block=self._block_ms
                )
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    last = entry_id
                    yield _event(entry_id, fields["e"])


def _status_json(status: WorkerStatus) -> str:
    data = asdict(status)
    data["last_seen"] = status.last_seen.isoformat()
    data["started_at"] = status.started_at.isoformat() if status.started_at else None
    return json.dumps(data)


def _status(raw: str | bytes) -> WorkerStatus:
    data = json.loads(raw)
    if "action_type" in data:
        data = data["payload"]
    data["queues"] = tuple(data["queues"])
    data["running"] = tuple(data["running"])
    data["last_seen"] = datetime.fromisoformat(data["last_seen"])
    started = data.get("started_at")
    data["started_at"] = datetime.fromisoformat(started) if started else None
    return WorkerStatus(**data)


class RedisRegistry:
    def __init__(self, client: Redis, clock: Callable[[], int] = now_ms) -> None:
        self._client = client
        self._clock = clock
        self._run = Runner(client)

    async def beat(self, status: WorkerStatus, ttl_ms: int) -> None:
        raw = _status_json(status)
        announcement = '{"action_type": "HEARTBEAT", "payload": ' + raw + "}"
        with translated("heartbeat"):
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hset(WORKERS_KEY, status.id, raw)
                pipe.zadd(WORKERS_EXPIRY_KEY, {status.id: to_ms(status.last_seen) + ttl_ms})
                pipe.publish(HEARTBEAT_CHANNEL, announcement)
                await pipe.execute()

    async def alive(self) -> list[WorkerStatus]:
        keys = [WORKERS_KEY, WORKERS_EXPIRY_KEY]
        raws = await self._run.call(ALIVE_SCRIPT, keys, [self._clock()])
        return sorted((_status(r) for r in raws), key=lambda s: s.id)

    async def last_seen(self, worker_id: str) -> datetime | None:
        calls = [
            Call(None, [WORKERS_KEY], [worker_id], "HGET"),
            Call(None, [WORKERS_EXPIRY_KEY], [worker_id], "ZSCORE"),
        ]
        raw, until = await self._run.many(calls)
        if raw is None or until is None or float(until) <= self._clock():
            return None
        return _status(raw).last_seen

    async def watch(self) -> AsyncGenerator[WorkerStatus, None]:
        pubsub: PubSub = self._client.pubsub()
        try:
            with translated("watch heartbeats"):
                await pubsub.subscribe(HEARTBEAT_CHANNEL)
            while True:
                with translated("watch heartbeats"):
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                raise_if_cancelling()
                if message is not None and message["type"] == "message":
                    yield _status(message["data"])
        finally:
            await pubsub.aclose()
