"""Server-side guarantees for remote workers on the embedded adapters, with a fake clock:
fencing, the timeout backstop in heartbeats, and the kill push."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from giobba_server.broker.memory import MemoryBroker
from giobba_server.broker.memory_feed import MemoryFeed, MemoryRegistry
from giobba_server.broker.memory_signals import MemorySignals
from giobba_server.broker.redis_signals import decode, encode
from giobba_server.domain.errors import StaleLease
from giobba_server.domain.ports import CancelReason, WorkerStatus
from giobba_server.domain.signals import CancelNotice
from giobba_server.domain.spec import TaskSpec
from giobba_server.domain.task import TaskState
from giobba_server.scheduler.reaper import Reaper
from giobba_server.services import control, leasing, submit
from giobba_server.services.cancels import CancelHub
from giobba_server.services.context import Deps, Settings
from giobba_server.store.sqlite import SqliteRepository
from tests.support.clock import Clock

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Env:
    deps: Deps
    clock: Clock


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    clock = Clock(T0)
    repo = SqliteRepository(str(tmp_path / "g.db"))
    await repo.open()
    settings = Settings(server_id="s1", lease=timedelta(seconds=5))
    deps = Deps(
        MemoryBroker(clock.ms), repo, MemoryFeed(), MemoryRegistry(clock.ms), settings, clock
    )
    deps.cancels = CancelHub(MemorySignals())
    yield Env(deps, clock)
    await repo.close()


def status(worker_id: str, clock: Clock) -> WorkerStatus:
    return WorkerStatus(worker_id, "h", 1, ("default",), 1, (), 0, 0, "t", "WORKER", clock())


async def leased(env: Env, worker_id: str = "w1", **spec: object) -> leasing.Leased:
    await submit.submit(env.deps, [TaskSpec(name="job", **spec)])  # type: ignore[arg-type]
    (item,) = await leasing.lease(env.deps, worker_id, ["default"], 1, 0)
    return item


async def test_stale_token_is_refused_and_changes_nothing(env: Env) -> None:
    item = await leased(env, max_retries=1)
    env.clock.advance(6)
    assert await Reaper(env.deps).sweep() == 1  # worker lost: back to PENDING
    before = await env.deps.repo.get(item.task.id)
    with pytest.raises(StaleLease):
        await leasing.complete_task(env.deps, item.task.id, item.token, "{}")
    with pytest.raises(StaleLease):
        await leasing.fail_task(env.deps, item.task.id, item.token, "x", False)
    assert await env.deps.repo.get(item.task.id) == before


async def test_heartbeat_renews_on_the_server_clock(env: Env) -> None:
    item = await leased(env)
    for _ in range(4):  # 4 x 4 s > the 5 s lease: only renewals keep it
        env.clock.advance(4)
        lease = [(item.task.id, item.token)]
        renewed, cancelled = await leasing.heartbeat(env.deps, status("w1", env.clock), lease)
        assert renewed == [item.task.id] and cancelled == []
    assert await Reaper(env.deps).sweep() == 0


async def test_heartbeat_ends_an_attempt_past_its_timeout(env: Env) -> None:
    item = await leased(env, timeout=timedelta(seconds=2), max_retries=1)
    lease = [(item.task.id, item.token)]
    due = leasing.overdue_at(env.deps, item.task)
    assert due is not None
    env.clock.now = due - timedelta(seconds=1)
    _, cancelled = await leasing.heartbeat(env.deps, status("w1", env.clock), lease)
    assert cancelled == []
    env.clock.now = due
    renewed, cancelled = await leasing.heartbeat(env.deps, status("w1", env.clock), lease)
    assert renewed == [] and cancelled == [(item.task.id, CancelReason.TIMEOUT)]
    task = await env.deps.repo.get(item.task.id)
    assert task is not None and task.state is TaskState.PENDING and task.error == "timeout"
    with pytest.raises(StaleLease):
        await leasing.complete_task(env.deps, item.task.id, item.token, "{}")


async def test_kill_is_pushed_to_the_workers_stream(env: Env) -> None:
    hub = env.deps.cancels
    assert hub is not None
    pump = asyncio.create_task(hub.run())
    stream = hub.watch("w1")
    first = asyncio.ensure_future(anext(stream))
    item = await leased(env)
    await asyncio.sleep(0)  # let the pump subscribe
    killed = await control.kill_task(env.deps, item.task.id, "")
    notice = await asyncio.wait_for(first, 5)
    assert notice == CancelNotice("w1", item.task.id, CancelReason.KILLED)
    assert killed.state is TaskState.KILLED
    with pytest.raises(StaleLease):
        await leasing.complete_task(env.deps, item.task.id, item.token, "{}")
    _, cancelled = await leasing.heartbeat(
        env.deps, status("w1", env.clock), [(item.task.id, item.token)]
    )
    assert (item.task.id, CancelReason.KILLED) in cancelled  # the heartbeat path too
    await stream.aclose()
    pump.cancel()


def test_services_channel_messages_round_trip() -> None:
    notice = CancelNotice("w1", "t1", CancelReason.KILLED)
    assert decode(encode(notice)) == notice
    assert '"action_type": "KILL"' in encode(notice)
    assert decode('{"action_type": "REVOKE", "payload": {}}') is None
    assert decode("not json") is None
