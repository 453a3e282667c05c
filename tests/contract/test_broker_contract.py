"""The Broker port's contract, run against every adapter (huey's style: one suite class,
one subclass per adapter). A behaviour difference between adapters is a bug."""

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import ClassVar

import pytest
from redis.asyncio import Redis

from giobba_server.broker.memory import MemoryBroker
from giobba_server.broker.redis_backend import open_redis
from giobba_server.broker.redis_broker import QUEUES_KEY, RedisBroker, wake_channel
from giobba_server.config import BrokerConfig, Config
from giobba_server.domain.errors import Unavailable
from giobba_server.domain.ports import (
    Broker,
    CancelReason,
    LiveEntry,
    Moved,
    RevokeOutcome,
    TaskRef,
)
from giobba_server.domain.task import Hold
from tests.contract.conftest import Clock, eventually
from tests.support.services import RedisServer, free_port

LEASE = 10_000
BASE_SEQ = 1_700_000_000_000_000  # microseconds since the epoch, as SeqSource makes them
_ids = itertools.count(1)


def entry(
    clock: Clock,
    queue: str = "q",
    *,
    priority: int = 5,
    seq: int | None = None,
    eta_in: int = 0,
    expires_in: int | None = None,
    holds: frozenset[Hold] = frozenset(),
) -> LiveEntry:
    n = next(_ids)
    return LiveEntry(
        id=f"task-{n:06d}",
        queue=queue,
        priority=priority,
        seq=BASE_SEQ + n if seq is None else seq,
        eta_ms=clock() + eta_in,
        expires_ms=None if expires_in is None else clock() + expires_in,
        holds=holds,
    )


async def claim_ids(broker: Broker, queues: list[str], limit: int = 100) -> list[str]:
    batch = await broker.claim(queues, "w1", limit, LEASE)
    return [c.id for c in batch.claims]


class BrokerContract:
    # Adapters may not differ in behaviour; no capability flags are needed yet.
    capabilities: ClassVar[frozenset[str]] = frozenset()

    @pytest.fixture
    async def broker(self, clock: Clock) -> AsyncIterator[Broker]:
        raise NotImplementedError
        yield

    async def until_waiting(self, broker: Broker, queue: str) -> None:
        """Give a waiter started in a task the chance to block (adapters refine it)."""
        for _ in range(20):
            await asyncio.sleep(0)

    # -- ordering ----------------------------------------------------------------------

    async def test_priority_first_across_queues(self, broker: Broker, clock: Clock) -> None:
        low = entry(clock, "a", priority=1)
        mid = entry(clock, "b", priority=5)
        high_a = entry(clock, "a", priority=9)
        high_b = entry(clock, "b", priority=9)
        await broker.add([low, mid, high_a, high_b])
        assert await claim_ids(broker, ["a", "b"], 1) == [high_a.id]
        assert await claim_ids(broker, ["a", "b"], 10) == [high_b.id, mid.id, low.id]

    async def test_batch_claim_in_global_order(self, broker: Broker, clock: Clock) -> None:
        entries = [entry(clock, q, priority=p) for p in (0, 3, 10) for q in ("a", "b", "c")]
        await broker.add(list(reversed(entries)))
        expected = sorted(entries, key=lambda e: (-e.priority, e.seq))
        assert await claim_ids(broker, ["c", "a", "b"], 9) == [e.id for e in expected]

    async def test_fifo_within_priority(self, broker: Broker, clock: Clock) -> None:
        entries = [entry(clock, seq=BASE_SEQ + s) for s in (5, 1, 4, 2, 3)]
        await broker.add(entries)
        expected = [e.id for e in sorted(entries, key=lambda e: e.seq)]
        assert await claim_ids(broker, ["q"], 10) == expected

    async def test_fifo_is_exact_for_large_seqs(self, broker: Broker, clock: Clock) -> None:
        # Beyond 2**53 a float score cannot tell these apart.
        big = 2**53 + 1
        entries = [entry(clock, seq=big + 2), entry(clock, seq=big), entry(clock, seq=big + 1)]
        await broker.add(entries)
        assert await claim_ids(broker, ["q"]) == [entries[1].id, entries[2].id, entries[0].id]

    async def test_claim_respects_limit_and_only_named_queues(
        self, broker: Broker, clock: Clock
    ) -> None:
        await broker.add([entry(clock, "a") for _ in range(3)] + [entry(clock, "other")])
        assert len(await claim_ids(broker, ["a"], 2)) == 2
        assert len(await claim_ids(broker, ["a"], 5)) == 1
        assert await claim_ids(broker, ["a"], 5) == []

    async def test_claim_hands_out_lease(self, broker: Broker, clock: Clock) -> None:
        e = entry(clock)
        await broker.add([e])
        batch = await broker.claim(["q"], "w1", 1, LEASE)
        (claim,) = batch.claims
        assert (claim.id, claim.queue, claim.version) == (e.id, "q", e.version + 1)
        assert claim.token
        assert abs(claim.lease_deadline_ms - (clock() + LEASE)) < 5_000
        assert batch.expired == []

    # -- ETA ---------------------------------------------------------------------------

    async def test_eta_not_before_due(self, broker: Broker, clock: Clock) -> None:
        later = entry(clock, priority=10, eta_in=60_000)
        now = entry(clock, priority=0)
        await broker.add([later, now])
        assert await claim_ids(broker, ["q"]) == [now.id]
        clock.advance(59_000)
        assert await claim_ids(broker, ["q"]) == []
        clock.advance(1_001)
        assert await claim_ids(broker, ["q"]) == [later.id]

    async def test_due_eta_takes_its_priority_place(self, broker: Broker, clock: Clock) -> None:
        delayed = entry(clock, priority=9, eta_in=1_000)
        ready = entry(clock, priority=1)
        await broker.add([delayed, ready])
        clock.advance(1_000)
        assert await claim_ids(broker, ["q"]) == [delayed.id, ready.id]

    # -- waiting -----------------------------------------------------------------------

    async def test_wait_returns_at_once_when_work_is_ready(
        self, broker: Broker, clock: Clock
    ) -> None:
        await broker.add([entry(clock)])
        await asyncio.wait_for(broker.wait_for_work(["q"], 30), 10)

    async def test_wait_wakes_on_add(self, broker: Broker, clock: Clock) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        waiter = asyncio.create_task(broker.wait_for_work(["x", "q"], 30))
        await self.until_waiting(broker, "q")
        assert not waiter.done()
        await broker.add([entry(clock, "q")])
        await asyncio.wait_for(waiter, 10)
        assert loop.time() - started < 10

    async def test_wait_wakes_on_release(self, broker: Broker, clock: Clock) -> None:
        await broker.add([entry(clock)])
        (claim,) = (await broker.claim(["q"], "w1", 1, LEASE)).claims
        waiter = asyncio.create_task(broker.wait_for_work(["q"], 30))
        await self.until_waiting(broker, "q")
        assert not waiter.done()
        assert await broker.release(TaskRef("q", claim.id), claim.token) is not None
        await asyncio.wait_for(waiter, 10)

    async def test_wait_wakes_on_eta(self, broker: Broker, clock: Clock) -> None:
        loop = asyncio.get_running_loop()
        e = entry(clock, eta_in=400)
        await broker.add([e])
        started = loop.time()
        await asyncio.wait_for(broker.wait_for_work(["q"], 30), 10)
        assert 0.2 <= loop.time() - started < 10
        assert await claim_ids(broker, ["q"]) == [e.id]

    async def test_wait_wakes_on_new_earlier_eta(self, broker: Broker, clock: Clock) -> None:
        await broker.add([entry(clock, eta_in=600_000)])
        waiter = asyncio.create_task(broker.wait_for_work(["q"], 30))
        await self.until_waiting(broker, "q")
        await broker.add([entry(clock, eta_in=300)])
        await asyncio.wait_for(waiter, 10)

    async def test_wait_times_out(self, broker: Broker) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(broker.wait_for_work(["q"], 0.3), 10)
        assert 0.25 <= loop.time() - started < 10

    # -- holds -------------------------------------------------------------------------

    async def test_holds_keep_a_task_back_until_all_are_dropped(
        self, broker: Broker, clock: Clock
    ) -> None:
        e = entry(clock, holds=frozenset({Hold.MANUAL, Hold.PARENT}))
        await broker.add([e])
        ref = TaskRef("q", e.id)
        assert await claim_ids(broker, ["q"]) == []
        first = await broker.unhold(ref, Hold.MANUAL)
        assert first == Moved(e.version + 1, "")
        assert await broker.unhold(ref, Hold.MANUAL) is None
        assert await claim_ids(broker, ["q"]) == []
        assert await broker.unhold(ref, Hold.PARENT) == Moved(e.version + 2, "")
        batch = await broker.claim(["q"], "w1", 1, LEASE)
        assert [c.version for c in batch.claims] == [e.version + 3]
        assert await broker.unhold(ref, Hold.PARENT) is None  # running now

    async def test_unhold_respects_eta(self, broker: Broker, clock: Clock) -> None:
        e = entry(clock, eta_in=5_000, holds=frozenset({Hold.PARENT}))
        await broker.add([e])
        assert await broker.unhold(TaskRef("q", e.id), Hold.PARENT) is not None
        assert await claim_ids(broker, ["q"]) == []
        clock.advance(5_000)
        assert await claim_ids(broker, ["q"]) == [e.id]

    async def test_unhold_unknown_task(self, broker: Broker) -> None:
        assert await broker.unhold(TaskRef("q", "nope"), Hold.MANUAL) is None

    # -- results and leases ------------------------------------------------------------

    async def test_finish_needs_the_current_token(self, broker: Broker, clock: Clock) -> None:
        await broker.add([entry(clock)])
        (claim,) = (await broker.claim(["q"], "w1", 1, LEASE)).claims
        ref = TaskRef("q", claim.id)
        assert await broker.finish(ref, "stale") is None
        assert await broker.finish(ref, "") is None
        assert await broker.finish(ref, claim.token) == Moved(claim.version + 1, "w1")
        assert await broker.finish(ref, claim.token) is None
        assert await broker.contains([ref]) == [False]

    async def test_retry_and_release_refuse_stale_tokens(
        self, broker: Broker, clock: Clock
    ) -> None:
        await broker.add([entry(clock)])
        (claim,) = (await broker.claim(["q"], "w1", 1, LEASE)).claims
        ref = TaskRef("q", claim.id)
        assert await broker.retry(ref, "stale", clock()) is None
        assert await broker.release(ref, "stale") is None
        assert await broker.retry(TaskRef("q", "nope"), claim.token, clock()) is None
        assert await broker.release(TaskRef("q", "nope"), claim.token) is None

    async def test_retry_waits_for_its_eta(self, broker: Broker, clock: Clock) -> None:
        await broker.add([entry(clock)])
        (claim,) = (await broker.claim(["q"], "w1", 1, LEASE)).claims
        ref = TaskRef("q", claim.id)
        moved = await broker.retry(ref, claim.token, clock() + 2_000)
        assert moved == Moved(claim.version + 1, "w1")
        assert await broker.finish(ref, claim.token) is None  # the old lease is over
        assert await claim_ids(broker, ["q"]) == []
        clock.advance(2_000)
        batch = await broker.claim(["q"], "w2", 1, LEASE)
        assert [(c.id, c.version) for c in batch.claims] == [(claim.id, claim.version + 2)]
        assert batch.claims[0].token != claim.token

    async def test_release_keeps_its_place_in_line(self, broker: Broker, clock: Clock) -> None:
        first, second = entry(clock), entry(clock)
        await broker.add([first, second])
        (claim,) = (await broker.claim(["q"], "w1", 1, LEASE)).claims
        assert claim.id == first.id
        moved = await broker.release(TaskRef("q", first.id), claim.token)
        assert moved == Moved(claim.version + 1, "w1")
        assert await claim_ids(broker, ["q"]) == [first.id, second.id]

    async def test_renew_extends_leases(self, broker: Broker, clock: Clock) -> None:
        await broker.add([entry(clock)])
        (claim,) = (await broker.claim(["q"], "w1", 1, 1_000)).claims
        ref = TaskRef("q", claim.id)
        clock.advance(800)
        renewal = await broker.renew("w1", [(ref, claim.token)], 1_000)
        assert renewal.renewed == [claim.id]
        assert renewal.cancelled == []
        clock.advance(800)
        assert await broker.expired_leases(10) == []
        clock.advance(300)
        (lost,) = await broker.expired_leases(10)
        assert (lost.ref, lost.token, lost.worker_id) == (ref, claim.token, "w1")
        assert await broker.finish(ref, claim.token) is not None  # the reaper's call

    async def test_renew_reports_stale_leases_lost(self, broker: Broker, clock: Clock) -> None:
        await broker.add([entry(clock)])
        (claim,) = (await broker.claim(["q"], "w1", 1, LEASE)).claims
        ref = TaskRef("q", claim.id)
        renewal = await broker.renew("w1", [(ref, "stale"), (TaskRef("q", "gone"), "t")], LEASE)
        assert renewal.renewed == []
        assert dict(renewal.cancelled) == {
            claim.id: CancelReason.LEASE_LOST,
            "gone": CancelReason.LEASE_LOST,
        }

    async def test_kill_fences_and_tells_the_worker(self, broker: Broker, clock: Clock) -> None:
        await broker.add([entry(clock, "a"), entry(clock, "b")])
        claims = (await broker.claim(["a", "b"], "w1", 2, LEASE)).claims
        killed, kept = claims
        ref = TaskRef(killed.queue, killed.id)
        assert await broker.kill(ref) == Moved(killed.version + 1, "w1")
        assert await broker.kill(ref) is None
        assert await broker.finish(ref, killed.token) is None
        leases = [(ref, killed.token), (TaskRef(kept.queue, kept.id), kept.token)]
        renewal = await broker.renew("w1", leases, LEASE)
        assert renewal.renewed == [kept.id]
        assert renewal.cancelled == [(killed.id, CancelReason.KILLED)]
        # Told once; a worker still holding it afterwards just hears the lease is lost.
        again = await broker.renew("w1", leases[:1], LEASE)
        assert again.cancelled == [(killed.id, CancelReason.LEASE_LOST)]

    async def test_kill_cancellation_reaches_a_worker_not_renewing_it(
        self, broker: Broker, clock: Clock
    ) -> None:
        await broker.add([entry(clock, "a")])
        (claim,) = (await broker.claim(["a"], "w1", 1, LEASE)).claims
        await broker.kill(TaskRef("a", claim.id))
        assert (await broker.renew("w2", [], LEASE)).cancelled == []
        assert (await broker.renew("w1", [], LEASE)).cancelled == [(claim.id, CancelReason.KILLED)]

    async def test_kill_needs_a_running_task(self, broker: Broker, clock: Clock) -> None:
        e = entry(clock)
        await broker.add([e])
        assert await broker.kill(TaskRef("q", e.id)) is None
        assert await broker.kill(TaskRef("q", "nope")) is None

    async def test_expired_leases_limit(self, broker: Broker, clock: Clock) -> None:
        await broker.add([entry(clock, q) for q in ("a", "b", "a")])
        await broker.claim(["a", "b"], "w1", 3, 1_000)
        clock.advance(1_000)
        assert len(await broker.expired_leases(10)) == 3
        assert len(await broker.expired_leases(2)) == 2

    # -- revoke ------------------------------------------------------------------------

    async def test_revoke_pending_only(self, broker: Broker, clock: Clock) -> None:
        ready = entry(clock)
        delayed = entry(clock, eta_in=60_000)
        held = entry(clock, holds=frozenset({Hold.MANUAL}))
        running = entry(clock, priority=10)
        await broker.add([ready, delayed, held, running])
        (claim,) = (await broker.claim(["q"], "w1", 1, LEASE)).claims
        assert claim.id == running.id
        for e in (ready, delayed, held):
            revoked = await broker.revoke(TaskRef("q", e.id))
            assert (revoked.outcome, revoked.version) == (RevokeOutcome.REVOKED, e.version + 1)
        refs = [TaskRef("q", e.id) for e in (ready, delayed, held, running)]
        assert await broker.contains(refs) == [False, False, False, True]
        assert (await broker.revoke(refs[0])).outcome is RevokeOutcome.NOT_PENDING
        assert (await broker.revoke(refs[3])).outcome is RevokeOutcome.NOT_PENDING
        clock.advance(60_000)
        assert await claim_ids(broker, ["q"]) == []

    # -- expiry ------------------------------------------------------------------------

    async def test_due_expiries(self, broker: Broker, clock: Clock) -> None:
        delayed = entry(clock, eta_in=60_000, expires_in=1_000)
        held = entry(clock, holds=frozenset({Hold.MANUAL}), expires_in=2_000)
        later = entry(clock, holds=frozenset({Hold.MANUAL}), expires_in=90_000)
        await broker.add([delayed, held, later])
        assert await broker.due_expiries(10) == []
        clock.advance(2_000)
        due = {r.id for r in await broker.due_expiries(10)}
        assert due == {delayed.id, held.id}
        assert len(await broker.due_expiries(1)) == 1
        # Stays due until revoked.
        assert {r.id for r in await broker.due_expiries(10)} == due
        await broker.revoke(TaskRef("q", delayed.id))
        assert [r.id for r in await broker.due_expiries(10)] == [held.id]

    async def test_running_tasks_do_not_expire(self, broker: Broker, clock: Clock) -> None:
        e = entry(clock, expires_in=1_000)
        await broker.add([e])
        (claim,) = (await broker.claim(["q"], "w1", 1, 60_000)).claims
        clock.advance(2_000)
        assert await broker.due_expiries(10) == []
        # Retried past its expiry, it is pending again and due to expire.
        await broker.retry(TaskRef("q", e.id), claim.token, clock() + 10_000)
        assert [r.id for r in await broker.due_expiries(10)] == [e.id]

    async def test_claim_reports_expired_tasks(self, broker: Broker, clock: Clock) -> None:
        stale = entry(clock, priority=9, expires_in=1_000)
        fresh = entry(clock, priority=1)
        await broker.add([stale, fresh])
        clock.advance(1_000)
        batch = await broker.claim(["q"], "w1", 1, LEASE)
        assert [c.id for c in batch.claims] == [fresh.id]
        assert batch.expired == [TaskRef("q", stale.id)]
        again = await broker.claim(["q"], "w1", 5, LEASE)
        assert (again.claims, again.expired) == ([], [])
        assert await broker.contains([TaskRef("q", stale.id)]) == [True]
        assert [r.id for r in await broker.due_expiries(10)] == [stale.id]
        revoked = await broker.revoke(TaskRef("q", stale.id))
        assert revoked.outcome is RevokeOutcome.REVOKED

    async def test_next_deadline(self, broker: Broker, clock: Clock) -> None:
        assert await broker.next_deadline_ms() is None
        await broker.add([entry(clock, "a")])
        (claim,) = (await broker.claim(["a"], "w1", 1, 50_000)).claims
        assert await broker.next_deadline_ms() == claim.lease_deadline_ms
        soon = entry(clock, "b", eta_in=60_000, expires_in=20_000)
        await broker.add([soon])
        assert await broker.next_deadline_ms() == soon.expires_ms
        await broker.revoke(TaskRef("b", soon.id))
        await broker.finish(TaskRef("a", claim.id), claim.token)
        assert await broker.next_deadline_ms() is None

    # -- recovery ----------------------------------------------------------------------

    async def test_contains(self, broker: Broker, clock: Clock) -> None:
        e = entry(clock, "a")
        await broker.add([e])
        refs = [TaskRef("a", e.id), TaskRef("a", "nope"), TaskRef("b", "nope")]
        assert await broker.contains(refs) == [True, False, False]
        assert await broker.contains([]) == []

    async def test_restore_adds_only_unknown_tasks(self, broker: Broker, clock: Clock) -> None:
        known = entry(clock, priority=1)
        await broker.add([known])
        (claim,) = (await broker.claim(["q"], "w1", 1, LEASE)).claims
        lost = entry(clock)
        assert await broker.restore([known, lost]) == 1
        assert await broker.restore([known, lost]) == 0
        # The known task kept its lease; the lost one is claimable once.
        assert await broker.finish(TaskRef("q", known.id), claim.token) is not None
        assert await claim_ids(broker, ["q"]) == [lost.id]
        assert await broker.restore([]) == 0

    async def test_restore_running_keeps_the_lease(self, broker: Broker, clock: Clock) -> None:
        base = entry(clock, eta_in=5_000)  # for a running entry, eta is the lease deadline
        running = LiveEntry(
            id=base.id,
            queue="q",
            priority=5,
            seq=base.seq,
            eta_ms=base.eta_ms,
            version=3,
            running_token="tok",
            worker_id="w9",
        )
        assert await broker.restore([running]) == 1
        assert await claim_ids(broker, ["q"]) == []
        ref = TaskRef("q", base.id)
        assert (await broker.renew("w9", [(ref, "tok")], LEASE)).renewed == [base.id]
        clock.advance(LEASE + 1)
        (lost,) = await broker.expired_leases(10)
        assert (lost.ref, lost.token, lost.worker_id) == (ref, "tok", "w9")
        assert await broker.finish(ref, "tok") == Moved(4, "w9")

    async def test_add_restores_many_queues_at_once(self, broker: Broker, clock: Clock) -> None:
        entries = [entry(clock, f"q{i % 3}") for i in range(30)]
        assert await broker.restore(entries) == 30
        got = await claim_ids(broker, ["q0", "q1", "q2"], 100)
        assert sorted(got) == sorted(e.id for e in entries)


class TestMemoryBroker(BrokerContract):
    @pytest.fixture
    async def broker(self, clock: Clock) -> AsyncIterator[Broker]:
        yield MemoryBroker(clock)


@pytest.mark.redis
class TestRedisBroker(BrokerContract):
    @pytest.fixture
    async def broker(self, clock: Clock, redis_client: Redis) -> AsyncIterator[Broker]:
        broker = RedisBroker(redis_client, clock)
        try:
            yield broker
        finally:
            await broker.close()

    async def until_waiting(self, broker: Broker, queue: str) -> None:
        assert isinstance(broker, RedisBroker)
        client = broker._client  # the test's own view of the subscription

        async def subscribed() -> bool:
            counts = await client.pubsub_numsub(wake_channel(queue))
            return bool(counts and counts[0][1])

        await eventually(subscribed, what="the waiter to subscribe")
        await super().until_waiting(broker, queue)


@pytest.mark.redis
class TestRedisClusterModeBroker(TestRedisBroker):
    """The per-queue claim used on Redis Cluster (no script spans two queues' slots),
    run here on one node: it must keep the same contract."""

    @pytest.fixture
    async def broker(self, clock: Clock, redis_client: Redis) -> AsyncIterator[Broker]:
        broker = RedisBroker(redis_client, clock, cluster=True)
        try:
            yield broker
        finally:
            await broker.close()


@pytest.mark.redis
@pytest.mark.parametrize("cluster", [False, True], ids=["standalone", "cluster-mode"])
async def test_concurrent_claimers_never_share_a_task(
    redis_factory: Callable[[], Redis], clock: Clock, cluster: bool
) -> None:
    """Two brokers on two connections, as two server processes would be."""
    brokers = [RedisBroker(redis_factory(), clock, cluster) for _ in range(2)]
    entries = [entry(clock, f"c{i % 2}", priority=i % 11) for i in range(500)]
    await brokers[0].add(entries)

    claimed: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30

    async def drain(broker: RedisBroker, worker: str) -> list[str]:
        # A claimer that loses a race comes back short or empty: keep going until all
        # are out, as the lease loop does after wait_for_work.
        got: list[str] = []
        while len(claimed) < len(entries):
            assert loop.time() < deadline, "claimers stalled"
            batch = await broker.claim(["c0", "c1"], worker, 7, LEASE)
            got.extend(c.id for c in batch.claims)
            claimed.extend(c.id for c in batch.claims)
        return got

    try:
        first, second = await asyncio.gather(drain(brokers[0], "w1"), drain(brokers[1], "w2"))
    finally:
        for broker in brokers:
            await broker.close()
    assert sorted(first + second) == sorted(e.id for e in entries)
    if not cluster:  # in cluster mode a claimer in lockstep with the other may lose every race
        assert first and second


# -- Redis only: connection handling (the in-process broker has no connection) ----------


@pytest.mark.redis
async def test_open_redis_takes_env_overrides(clean_redis: RedisServer) -> None:
    config = Config(broker=BrokerConfig(url="redis://127.0.0.1:1/0", port=clean_redis.port, db=3))
    closers: list[Callable[[], Awaitable[None]]] = []
    broker, feed, _ = await open_redis(config, closers)
    try:
        await broker.add([entry(Clock(), "envq")])
        await feed.publish([])
    finally:
        for closer in reversed(closers):
            await closer()
    probe = Redis.from_url(clean_redis.url.rsplit("/", 1)[0] + "/3")
    try:
        assert await probe.sismember(QUEUES_KEY, "envq")
    finally:
        await probe.aclose()


@pytest.mark.redis
async def test_open_redis_unreachable_is_unavailable_without_the_password() -> None:
    port = free_port()
    config = Config(broker=BrokerConfig(url=f"redis://admin:s3cret@127.0.0.1:{port}/0"))
    closers: list[Callable[[], Awaitable[None]]] = []
    with pytest.raises(Unavailable) as caught:
        await open_redis(config, closers)
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "s3cret" not in str(caught.value)
    assert closers == []


@pytest.mark.redis
async def test_broker_survives_a_redis_restart(
    clean_redis: RedisServer, redis_client: Redis, clock: Clock
) -> None:
    broker = RedisBroker(redis_client, clock)
    try:
        waiter = asyncio.create_task(broker.wait_for_work(["q"], 30))
        await TestRedisBroker().until_waiting(broker, "q")
        clean_redis.stop()
        with pytest.raises(Unavailable):
            await broker.add([entry(clock)])
        clean_redis.start()
        # Redis came back empty: the scripts reload on NOSCRIPT, and the waiter hears of
        # the new task (its publish, or the wake-up that follows the resubscribe).
        e = entry(clock)
        await broker.add([e])
        with contextlib.suppress(Unavailable):  # a re-check during the outage may fail
            await asyncio.wait_for(waiter, 10)
        assert await claim_ids(broker, ["q"]) == [e.id]
    finally:
        await broker.close()
