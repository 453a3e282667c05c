"""A move the broker made is carried to its end when a backend fails half-way through its
tail, and a result the store could not hold is refused before the broker moves anything.

The backends are the real embedded ones (in-process broker, SQLite repository, in-memory
feed) with faults injected around them: the next N saves or publishes raise Unavailable.
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from giobba_server.broker.memory import MemoryBroker
from giobba_server.broker.memory_feed import MemoryFeed, MemoryRegistry
from giobba_server.domain.document import MAX_DOCUMENT_BYTES
from giobba_server.domain.errors import InvalidArgument, StaleLease, Unavailable
from giobba_server.domain.ports import ActivityEvent, WorkerStatus
from giobba_server.domain.spec import TaskSpec
from giobba_server.domain.task import Hold, Task, TaskState
from giobba_server.scheduler.reaper import Reaper
from giobba_server.services import leasing, submit
from giobba_server.services.context import Deps, Settings
from giobba_server.services.mending import Mender
from giobba_server.services.recovery import reconcile
from giobba_server.store.sqlite import SqliteRepository
from tests.support.clock import Clock

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MiB = 2**20


class FlakyRepository(SqliteRepository):
    """The real SQLite repository; `fail(n)` makes its next n saves raise Unavailable
    (only saves of `task_id`, when given), as a locked database file would."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self._failing = 0
        self._only = ""

    def fail(self, times: int, task_id: str = "") -> None:
        self._failing, self._only = times, task_id

    async def save(self, task: Task) -> bool:
        if self._failing > 0 and self._only in ("", task.id):
            self._failing -= 1
            raise Unavailable("sqlite: database is locked (injected)")
        return await super().save(task)


class FlakyFeed(MemoryFeed):
    """The real in-process feed; `fail(n)` makes its next n publishes raise Unavailable."""

    def __init__(self) -> None:
        super().__init__()
        self._failing = 0

    def fail(self, times: int) -> None:
        self._failing = times

    async def publish(self, events: Sequence[ActivityEvent]) -> None:
        if self._failing > 0:
            self._failing -= 1
            raise Unavailable("sqlite feed: database is locked (injected)")
        await super().publish(events)

    async def kinds(self, task_id: str) -> list[str]:
        """Every event recorded for `task_id`, in feed order."""
        head = await self.head()
        found: list[str] = []
        stream = self.watch(0)
        async for event in stream:
            if event.task_id == task_id:
                found.append(event.kind)
            if event.cursor >= head:
                break
        await stream.aclose()
        return found


@dataclass
class Env:
    deps: Deps
    repo: FlakyRepository
    feed: FlakyFeed
    clock: Clock
    loops: list[asyncio.Task[None]] = field(default_factory=list)

    def mend(self) -> None:
        """Start the background loop the app runs (tests start it when they want it)."""
        self.loops.append(asyncio.create_task(self.deps.mender.run()))

    async def mended(self) -> bool:
        return self.deps.mender.owed == 0

    async def state(self, task_id: str) -> Task:
        task = await self.repo.get(task_id)  # the record as is: no catching up first
        assert task is not None
        return task


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    clock = Clock(T0)
    repo = FlakyRepository(str(tmp_path / "g.db"))
    await repo.open()
    feed = FlakyFeed()
    settings = Settings(server_id="s1", lease=timedelta(seconds=5))
    deps = Deps(MemoryBroker(clock.ms), repo, feed, MemoryRegistry(clock.ms), settings, clock)
    deps.mender = Mender(base=0.01, cap=0.05)
    env = Env(deps, repo, feed, clock)
    yield env
    for loop in env.loops:
        loop.cancel()
    await asyncio.gather(*env.loops, return_exceptions=True)
    await repo.close()


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> None:
    """Wait for a condition with a deadline, yielding to the loop between checks."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def leased(env: Env, **spec: object) -> leasing.Leased:
    (task,) = await submit.submit(env.deps, [TaskSpec(name="job", **spec)])  # type: ignore[arg-type]
    (item,) = await leasing.lease(env.deps, "w1", ["default"], 1, 0)
    assert item.task.id == task.id
    return item


async def test_a_completion_whose_save_fails_is_recorded_later_exactly_once(env: Env) -> None:
    item = await leased(env)
    env.repo.fail(2)
    with pytest.raises(Unavailable):
        await leasing.complete_task(env.deps, item.task.id, item.token, '{"a": 1}')
    assert (await env.state(item.task.id)).state is TaskState.RUNNING  # not yet recorded
    with pytest.raises(Unavailable):  # a retry while still owed: not ABORTED, try again
        await leasing.complete_task(env.deps, item.task.id, item.token, '{"a": 1}')
    env.mend()
    await eventually(env.mended)
    done = await env.state(item.task.id)
    assert done.state is TaskState.COMPLETED and done.result == '{"a": 1}'
    assert done.lease_token == "" and done.version > item.task.version
    assert await env.feed.kinds(item.task.id) == ["CREATED", "STARTED", "COMPLETED"]
    with pytest.raises(StaleLease):  # the first try landed: that is success too
        await leasing.complete_task(env.deps, item.task.id, item.token, '{"a": 1}')


async def test_a_parent_whose_event_fails_still_frees_its_child(env: Env) -> None:
    item = await leased(env)
    (child,) = await submit.submit(env.deps, [TaskSpec(name="kid", parent_id=item.task.id)])
    env.feed.fail(1)
    with pytest.raises(Unavailable):
        await leasing.complete_task(env.deps, item.task.id, item.token, "{}")
    assert (await env.state(item.task.id)).state is TaskState.COMPLETED  # saved, not announced
    assert Hold.PARENT in (await env.state(child.id)).holds
    env.mend()
    (started,) = await leasing.lease(env.deps, "w2", ["default"], 1, 5)
    assert started.task.id == child.id and started.task.attempts == 1
    await eventually(env.mended)
    assert await env.feed.kinds(item.task.id) == ["CREATED", "STARTED", "COMPLETED"]


async def test_a_cascade_cut_short_revokes_every_descendant_later(env: Env) -> None:
    item = await leased(env)
    (child,) = await submit.submit(env.deps, [TaskSpec(name="kid", parent_id=item.task.id)])
    (grandchild,) = await submit.submit(env.deps, [TaskSpec(name="kid", parent_id=child.id)])
    env.repo.fail(1, task_id=child.id)  # the child is revoked in the broker, not recorded
    with pytest.raises(Unavailable):
        await leasing.fail_task(env.deps, item.task.id, item.token, "boom", no_retry=True)
    assert (await env.state(grandchild.id)).state is TaskState.PENDING
    env.mend()
    await eventually(env.mended)
    for task_id in (child.id, grandchild.id):
        revoked = await env.state(task_id)
        assert revoked.state is TaskState.REVOKED
        assert await env.feed.kinds(task_id) == ["CREATED", "REVOKED"]


async def test_a_claim_not_recorded_is_handed_back_unused(env: Env) -> None:
    first, second = await submit.submit(
        env.deps, [TaskSpec(name="job", priority=5), TaskSpec(name="job", priority=1)]
    )
    env.repo.fail(1, task_id=second.id)  # the batch's second claim cannot be recorded
    with pytest.raises(Unavailable):
        await leasing.lease(env.deps, "w1", ["default"], 2, 0)
    for task_id in (first.id, second.id):
        back = await env.state(task_id)
        assert back.state is TaskState.PENDING and back.attempts == 0 and back.lease_token == ""
    assert await env.feed.kinds(first.id) == ["CREATED", "STARTED", "RELEASED"]
    assert await env.feed.kinds(second.id) == ["CREATED"]  # never started, as far as anyone saw
    again = await leasing.lease(env.deps, "w1", ["default"], 2, 0)
    assert [(i.task.id, i.task.attempts) for i in again] == [(first.id, 1), (second.id, 1)]


async def test_a_claim_not_announced_is_handed_back_unused(env: Env) -> None:
    (task,) = await submit.submit(env.deps, [TaskSpec(name="job")])
    env.feed.fail(1)
    with pytest.raises(Unavailable):
        await leasing.lease(env.deps, "w1", ["default"], 1, 0)
    env.mend()
    await eventually(env.mended)
    back = await env.state(task.id)
    assert back.state is TaskState.PENDING and back.attempts == 0
    assert await env.feed.kinds(task.id) == ["CREATED", "STARTED", "RELEASED"]
    (again,) = await leasing.lease(env.deps, "w1", ["default"], 1, 0)
    assert again.task.id == task.id and again.task.attempts == 1


async def test_a_result_too_big_to_store_is_refused_and_the_lease_kept(env: Env) -> None:
    nine = '{"x": "' + "y" * (9 * MiB) + '"}'  # a valid payload, and a valid result alone
    item = await leased(env, payload=nine, max_retries=1)
    with pytest.raises(InvalidArgument) as refused:
        await leasing.complete_task(env.deps, item.task.id, item.token, nine)
    assert refused.value.field == "result" and str(MAX_DOCUMENT_BYTES) in refused.value.reason
    running = await env.state(item.task.id)
    assert running.state is TaskState.RUNNING and running.lease_token == item.token
    beat = WorkerStatus("w1", "h", 1, ("default",), 1, (), 0, 0, "t", "WORKER", env.clock())
    renewed, _ = await leasing.heartbeat(env.deps, beat, [(item.task.id, item.token)])
    assert renewed == [item.task.id]  # the broker's lease is intact
    failed = await leasing.fail_task(env.deps, item.task.id, item.token, "too big", False)
    assert failed.state is TaskState.PENDING and failed.error == "too big"  # a retry


async def test_a_crash_with_a_move_unrecorded_ends_in_a_report_or_a_lost_attempt(
    env: Env,
) -> None:
    reported = await leased(env)
    abandoned = await leased(env)
    env.repo.fail(2)
    for item in (reported, abandoned):
        with pytest.raises(Unavailable):
            await leasing.complete_task(env.deps, item.task.id, item.token, "{}")
    # The server dies with both completions owed: its broker and its mender are gone.
    env.deps.broker = MemoryBroker(env.clock.ms)
    env.deps.mender = Mender()
    assert await reconcile(env.deps) == 2
    done = await leasing.complete_task(env.deps, reported.task.id, reported.token, "{}")
    assert done.state is TaskState.COMPLETED  # the worker's retried report lands
    env.clock.advance(6)  # nobody reports the other: its restored lease lapses
    assert await Reaper(env.deps).sweep() == 1
    lost = await env.state(abandoned.task.id)
    assert lost.state is TaskState.FAILED and lost.error == "worker lost"
