"""RedisBroker: the live state of every queue in Redis, shared by any number of servers.

Each move is one Lua script on one queue (see redis_scripts for the key layout); every key
a script touches is in KEYS and carries the queue's hash tag, so the scripts run unchanged
on Cluster. The one exception is the standalone cross-queue claim below.

Claiming across queues. A worker gets the highest-priority due task across all the
queues it serves. On a standalone Redis that is one script (CLAIM_ALL) given every
queue's keys: atomic, exact global order, one round trip. A script on Redis Cluster may
only touch one slot, so with `cluster=True` a claim on several queues is two pipelined
round trips: PEEK on every queue (promote due ETA tasks, list up to `limit` ready heads),
merge the heads in Python to choose the best `limit`, then CLAIM on each chosen queue
with the number to take and an upper bound (its worst chosen head). A claimer that raced
us leaves us short (even empty: the lease loop then waits, finds work and claims again),
never holding a worse task than one we passed over.

Waking waiters. Scripts that make a task claimable publish on `giobba:wake:{queue}`. Each
broker keeps one pub/sub connection, subscribed to the queues its waiters wait on, and
sets their events; a waiter also sets a local timer for the earliest delayed ETA (the
delayed ZSET's head). No fixed poll interval: a waiter sleeps until a message, its ETA
timer, or its own timeout.

Queues are also kept in the `giobba:queues` SET, because the reaper's questions (expired
leases, due expiries, next deadline) name no queue: they are asked of every known queue
in one pipeline, never with KEYS or SCAN. Cancellations owed to a worker (kill) are kept
per queue for the same reason, so `renew` asks every known queue in one pipeline too.
"""

import asyncio
import json
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from giobba_server.broker.redis_scripts import SCRIPTS, Call, Lua, Runner, translated
from giobba_server.domain.clock import now_ms
from giobba_server.domain.errors import Unavailable
from giobba_server.domain.ports import (
    CancelReason,
    Claim,
    ClaimBatch,
    ExpiredLease,
    LiveEntry,
    Moved,
    Renewal,
    Revoked,
    RevokeOutcome,
    TaskRef,
)
from giobba_server.domain.task import Hold
from giobba_server.waits import raise_if_cancelling, wait_event

QUEUES_KEY = "giobba:queues"
EPOCH_KEY = "giobba:{epoch}"
MEMBER_ID = 23  # a ready member is "PP" + 20-digit seq + ":" + id
ADD_CHUNK = 1000  # entries per script call: keeps any one script short


def queue_keys(queue: str) -> list[str]:
    tag = f"giobba:{{{queue}}}"
    return [
        f"{tag}:{part}" for part in ("tasks", "ready", "delayed", "leases", "expiries", "cancels")
    ]


def wake_channel(queue: str) -> str:
    return f"giobba:wake:{{{queue}}}"


def ready_member(entry: LiveEntry) -> str:
    """Lexicographic order = priority desc, then seq asc; the id follows char 23."""
    return f"{10 - entry.priority:02d}{entry.seq:020d}:{entry.id}"


def _entry_args(entry: LiveEntry) -> list[str | int]:
    return [
        entry.id,
        entry.priority,
        ready_member(entry),
        entry.eta_ms,
        "" if entry.expires_ms is None else entry.expires_ms,
        ",".join(sorted(entry.holds)),
        entry.version,
        entry.running_token,
        entry.worker_id,
    ]


def _moved(reply: Any) -> Moved | None:
    return None if reply is None else Moved(int(reply[0]), str(reply[1]))


class WakeHub:
    """One pub/sub connection shared by every waiter of this broker."""

    def __init__(self, client: Redis) -> None:
        self._pubsub: PubSub = client.pubsub()
        self._subscribed: dict[str, asyncio.Future[None]] = {}
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._reader: asyncio.Task[None] | None = None

    @contextmanager
    def listening(self, channels: Sequence[str]) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        for channel in channels:
            self._waiters.setdefault(channel, set()).add(event)
        try:
            yield event
        finally:
            for channel in channels:
                self._waiters[channel].discard(event)

    async def subscribe(self, channels: Sequence[str], timeout: float) -> None:
        """Return once every channel is subscribed, so no later publish is missed."""
        missing = [c for c in channels if c not in self._subscribed]
        if missing:
            loop = asyncio.get_running_loop()
            for channel in missing:
                self._subscribed[channel] = loop.create_future()
            try:
                with translated("subscribe"):
                    await self._pubsub.subscribe(*missing)
            except Unavailable:
                for channel in missing:  # not recorded by redis-py: the next waiter retries
                    del self._subscribed[channel]
                raise
            if self._reader is None:
                self._reader = asyncio.create_task(self._read())
        pending = [asyncio.shield(self._subscribed[c]) for c in channels]
        try:
            async with asyncio.timeout(max(timeout, 0.001)):
                await asyncio.gather(*pending)
        except TimeoutError:
            return  # the caller's own timeout passed: a spurious wake-up is allowed

    async def _read(self) -> None:
        retry = asyncio.Event()  # never set: waiting on it with a timeout is a backoff
        backoff = 0.05
        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except (RedisError, OSError):
                # redis-py reconnects and resubscribes on the next read; meanwhile every
                # waiter re-checks (and reports the outage through its own commands).
                self._wake_all()
                self._await_resubscribe()
                await wait_event(retry, backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            raise_if_cancelling()
            backoff = 0.05
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        channel = str(message["channel"])
        if message["type"] == "subscribe":
            future = self._subscribed.get(channel)
            if future is not None and not future.done():
                future.set_result(None)
        for event in self._waiters.get(channel, ()):
            event.set()

    def _await_resubscribe(self) -> None:
        """redis-py resubscribes when it reconnects; until Redis confirms, publishes are
        lost, so new waiters wait for the confirmation before trusting their peek (and
        every confirmation wakes the channel's waiters to re-check)."""
        loop = asyncio.get_running_loop()
        for channel, future in list(self._subscribed.items()):
            if future.done():
                self._subscribed[channel] = loop.create_future()

    def _wake_all(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with suppress(asyncio.CancelledError):
                await self._reader
        await self._pubsub.aclose()


class RedisBroker:
    def __init__(
        self, client: Redis, clock: Callable[[], int] = now_ms, cluster: bool = False
    ) -> None:
        self._client = client
        self._clock = clock
        self._cluster = cluster
        self._run = Runner(client)
        self._hub = WakeHub(client)

    async def close(self) -> None:
        await self._hub.close()

    def _call(self, script: Lua, queue: str, *args: str | int) -> Call:
        return Call(script, queue_keys(queue), [self._clock(), wake_channel(queue), *args])

    async def _one(self, script: Lua, queue: str, *args: str | int) -> Any:
        return await self._run.call(
            script, queue_keys(queue), [self._clock(), wake_channel(queue), *args]
        )

    async def epoch(self) -> str:
        """A random marker set once per Redis dataset: gone after FLUSHALL or a restart
        without persistence, so the next call sets (and returns) a new one."""
        with translated("epoch"):
            await self._client.set(EPOCH_KEY, secrets.token_hex(8), nx=True)
            value = await self._client.get(EPOCH_KEY)
        return value.decode() if isinstance(value, bytes) else str(value)

    async def _known_queues(self) -> list[str]:
        with translated("queues"):
            return sorted(str(q) for q in await self._client.smembers(QUEUES_KEY))

    # -- adding ------------------------------------------------------------------------

    async def add(self, entries: Sequence[LiveEntry]) -> None:
        await self._add(entries, restore=False)

    async def restore(self, entries: Sequence[LiveEntry]) -> int:
        return await self._add(entries, restore=True)

    async def _add(self, entries: Sequence[LiveEntry], restore: bool) -> int:
        by_queue: dict[str, list[LiveEntry]] = {}
        for entry in entries:
            by_queue.setdefault(entry.queue, []).append(entry)
        if not by_queue:
            return 0
        calls = [Call(None, [QUEUES_KEY], list(by_queue), "SADD")]
        for queue, group in by_queue.items():
            for start in range(0, len(group), ADD_CHUNK):
                chunk = group[start : start + ADD_CHUNK]
                args: list[str | int] = ["1" if restore else "0", len(chunk)]
                for entry in chunk:
                    args.extend(_entry_args(entry))
                calls.append(self._call(SCRIPTS.add, queue, *args))
        results = await self._run.many(calls)
        return sum(int(r) for r in results[1:])

    async def contains(self, refs: Sequence[TaskRef]) -> list[bool]:
        calls = [Call(None, [queue_keys(r.queue)[0]], [r.id], "HEXISTS") for r in refs]
        return [bool(r) for r in await self._run.many(calls)]

    # -- claiming ----------------------------------------------------------------------

    async def claim(
        self, queues: Sequence[str], worker_id: str, limit: int, lease_ms: int
    ) -> ClaimBatch:
        names = list(dict.fromkeys(queues))
        if self._cluster and len(names) > 1:
            return await self._claim_per_queue(names, worker_id, limit, lease_ms)
        deadline = self._clock() + lease_ms
        keys = [key for queue in names for key in queue_keys(queue)]
        args: list[str | int] = [self._clock(), "", limit, deadline, worker_id]
        args.append(secrets.token_hex(12))
        taken, lost = await self._run.call(SCRIPTS.claim_all, keys, args)
        claims = [
            Claim(task_id, names[int(q) - 1], token, deadline, int(version))
            for q, task_id, token, version in taken
        ]
        return ClaimBatch(claims, [TaskRef(names[int(q) - 1], task_id) for q, task_id in lost])

    async def _claim_per_queue(
        self, names: list[str], worker_id: str, limit: int, lease_ms: int
    ) -> ClaimBatch:
        """Cluster mode: peek every queue, choose, then take from each with a bound."""
        peeks = await self._run.many([self._call(SCRIPTS.peek, q, limit) for q in names])
        plan = _plan(names, [heads for heads, _ in peeks], limit)
        expired = [TaskRef(q, i) for q, (_, ids) in zip(names, peeks, strict=True) for i in ids]
        deadline = self._clock() + lease_ms
        prefix = secrets.token_hex(12)
        calls = [
            self._call(SCRIPTS.claim, q, n, bound, deadline, worker_id, f"{prefix}.{i}")
            for i, (q, (n, bound)) in enumerate(plan.items())
        ]
        taken: list[tuple[str, Claim]] = []
        for queue, (got, lost) in zip(plan, await self._run.many(calls), strict=True):
            taken.extend((m, Claim(m[MEMBER_ID:], queue, t, deadline, int(v))) for m, t, v in got)
            expired.extend(TaskRef(queue, i) for i in lost)
        taken.sort(key=lambda pair: pair[0])  # by ready member: the global order
        return ClaimBatch([claim for _, claim in taken], expired)

    async def wait_for_work(self, queues: Sequence[str], timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        channels = [wake_channel(q) for q in queues]
        with self._hub.listening(channels) as woken:
            await self._hub.subscribe(channels, timeout)
            while loop.time() < deadline:
                woken.clear()
                next_eta = await self._peek(queues)
                if next_eta is not None and next_eta <= self._clock():
                    return
                wake_at = deadline
                if next_eta is not None:
                    wake_at = min(deadline, loop.time() + (next_eta - self._clock()) / 1000)
                await wait_event(woken, max(wake_at - loop.time(), 0.0005))

    async def _peek(self, queues: Sequence[str]) -> int | None:
        """When work is due in `queues`: 0 if now, else the earliest ETA, None if never."""
        calls: list[Call] = []
        for queue in queues:
            keys = queue_keys(queue)
            calls.append(Call(None, [keys[1]], [0, 0], "ZRANGE"))
            calls.append(Call(None, [keys[2]], [0, 0, "WITHSCORES"], "ZRANGE"))
        results = await self._run.many(calls)
        if any(results[0::2]):
            return 0
        etas = [int(float(d[0][1])) for d in results[1::2] if d]
        return min(etas, default=None)

    # -- leases ------------------------------------------------------------------------

    async def renew(
        self, worker_id: str, leases: Sequence[tuple[TaskRef, str]], lease_ms: int
    ) -> Renewal:
        by_queue: dict[str, list[str]] = {q: [] for q in await self._known_queues()}
        for ref, token in leases:
            by_queue.setdefault(ref.queue, []).extend([ref.id, token])
        deadline = self._clock() + lease_ms
        calls = [self._call(SCRIPTS.renew, q, worker_id, deadline, *p) for q, p in by_queue.items()]
        renewed: list[str] = []
        owed: dict[str, CancelReason] = {}
        lost: list[str] = []
        for ok, gone, cancels in await self._run.many(calls):
            renewed.extend(ok)
            lost.extend(gone)
            if cancels:
                owed.update({k: CancelReason(v) for k, v in json.loads(cancels).items()})
        for task_id in lost:
            owed.setdefault(task_id, CancelReason.LEASE_LOST)
        return Renewal(renewed, list(owed.items()))

    async def finish(self, ref: TaskRef, token: str) -> Moved | None:
        return _moved(await self._one(SCRIPTS.finish, ref.queue, ref.id, token))

    async def retry(self, ref: TaskRef, token: str, eta_ms: int) -> Moved | None:
        return _moved(await self._one(SCRIPTS.requeue, ref.queue, ref.id, token, eta_ms))

    async def release(self, ref: TaskRef, token: str) -> Moved | None:
        return _moved(await self._one(SCRIPTS.requeue, ref.queue, ref.id, token, ""))

    async def revoke(self, ref: TaskRef) -> Revoked:
        reply = await self._one(SCRIPTS.revoke, ref.queue, ref.id)
        if int(reply[0]) == 0:
            return Revoked(RevokeOutcome.NOT_PENDING)
        return Revoked(RevokeOutcome.REVOKED, int(reply[1]))

    async def unhold(self, ref: TaskRef, hold: Hold) -> Moved | None:
        return _moved(await self._one(SCRIPTS.unhold, ref.queue, ref.id, hold.value))

    async def kill(self, ref: TaskRef) -> Moved | None:
        return _moved(await self._one(SCRIPTS.kill, ref.queue, ref.id))

    # -- the reaper's questions, asked of every known queue ----------------------------

    async def expired_leases(self, limit: int) -> list[ExpiredLease]:
        queues = await self._known_queues()
        replies = await self._run.many([self._call(SCRIPTS.expired, q, limit) for q in queues])
        found = [
            ExpiredLease(TaskRef(queue, flat[i]), flat[i + 1], flat[i + 2])
            for queue, flat in zip(queues, replies, strict=True)
            for i in range(0, len(flat), 3)
        ]
        return found[:limit]

    async def due_expiries(self, limit: int) -> list[TaskRef]:
        queues = await self._known_queues()
        now = self._clock()
        calls = [
            Call(None, [queue_keys(q)[4]], ["-inf", now, "LIMIT", 0, limit], "ZRANGEBYSCORE")
            for q in queues
        ]
        replies = await self._run.many(calls)
        due = [TaskRef(q, i) for q, ids in zip(queues, replies, strict=True) for i in ids]
        return due[:limit]

    async def next_deadline_ms(self) -> int | None:
        calls: list[Call] = []
        for queue in await self._known_queues():
            keys = queue_keys(queue)
            calls.append(Call(None, [keys[3]], [0, 0, "WITHSCORES"], "ZRANGE"))
            calls.append(Call(None, [keys[4]], [0, 0, "WITHSCORES"], "ZRANGE"))
        heads = [int(float(r[0][1])) for r in await self._run.many(calls) if r]
        return min(heads, default=None)


def _plan(queues: list[str], heads: list[Any], limit: int) -> dict[str, tuple[int, str]]:
    """Choose the best `limit` heads across queues: per queue, how many and the bound."""
    merged = sorted(
        (member, queue) for queue, members in zip(queues, heads, strict=True) for member in members
    )
    plan: dict[str, tuple[int, str]] = {}
    for member, queue in merged[:limit]:
        count = plan.get(queue, (0, ""))[0]
        plan[queue] = (count + 1, "[" + member)
    return plan
