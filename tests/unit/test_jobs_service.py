"""Cron job use cases on the embedded adapters (in-process broker and lock, SQLite stores),
driven by a fake clock so every fire time is exact and nothing sleeps."""

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from giobba_server.broker.memory import MemoryBroker
from giobba_server.broker.memory_feed import MemoryFeed, MemoryRegistry
from giobba_server.broker.memory_lock import MemoryFireLock
from giobba_server.domain.clock import to_ms
from giobba_server.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from giobba_server.domain.job import Job, JobSpec, MissedPolicy, OverlapPolicy
from giobba_server.domain.ports import TaskFilter
from giobba_server.domain.spec import TaskSpec
from giobba_server.domain.task import Task, TaskState
from giobba_server.scheduler.cron import CronLoop
from giobba_server.services import jobs, submit
from giobba_server.services.context import Deps, Settings
from giobba_server.store.sqlite import SqliteRepository
from giobba_server.store.sqlite_jobs import SqliteJobRepository
from tests.support.clock import Clock

T0 = datetime(2026, 3, 1, 12, 0, 0, 500_000, tzinfo=UTC)
EVERY_SECOND = "* * * * * *"


@dataclass
class Stack:
    deps: Deps
    clock: Clock

    async def runs(self, job_id: str) -> list[Task]:
        page = await self.deps.repo.query(TaskFilter(job_id=job_id), 1000, "")
        return sorted(page.tasks, key=lambda t: t.seq)

    async def job(self, job_id: str) -> Job:
        return await jobs.get_job(self.deps, job_id)

    def server(self, name: str) -> Deps:
        """Another server on the same broker, repository, job store and lock."""
        return replace(self.deps, settings=Settings(server_id=name), seq=None)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    clock = Clock(T0)
    repo = SqliteRepository(str(tmp_path / "g.db"))
    store = SqliteJobRepository(str(tmp_path / "g.db"))
    await repo.open()
    await store.open()
    deps = Deps(
        MemoryBroker(clock.ms),
        repo,
        MemoryFeed(),
        MemoryRegistry(clock.ms),
        Settings(server_id="s1"),
        clock=clock,
        jobs=store,
        fire_lock=MemoryFireLock(clock.ms),
    )
    yield Stack(deps, clock)
    await store.close()
    await repo.close()


def spec(schedule: str = EVERY_SECOND, **changes: object) -> JobSpec:
    base = JobSpec(task=TaskSpec(name="tick", payload='{"n": 1}'), schedule=schedule)
    return replace(base, **changes)  # type: ignore[arg-type]


async def test_create_computes_next_execution_in_the_zone(stack: Stack) -> None:
    job = await jobs.create_job(stack.deps, spec("30 1 * * *", timezone="America/New_York"))
    assert job.is_active and job.timezone == "America/New_York"
    assert job.next_execution == datetime(2026, 3, 2, 6, 30, tzinfo=UTC)
    assert (await stack.job(job.id)) == job


async def test_default_zone_comes_from_settings(stack: Stack) -> None:
    stack.deps.settings = Settings(server_id="s1", default_timezone="Europe/Rome")
    job = await jobs.create_job(stack.deps, spec("0 9 * * *"))
    assert job.timezone == "Europe/Rome"
    assert job.next_execution == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("job_spec", "field"),
    [
        (spec("61 * * * *"), "job.schedule"),
        (spec("0 0 15W * *"), "job.schedule"),
        (spec("@reboot"), "job.schedule"),
        (spec("0 0 * * *", timezone="Mars/Olympus"), "job.timezone"),
        (spec(task=TaskSpec(name="t", priority=11)), "job.task.priority"),
        (spec(task=TaskSpec(name="")), "job.task.name"),
        (spec(task=TaskSpec(name="t", schedule="* * * * *")), "job.task.schedule"),
        (spec(task=TaskSpec(name="t", payload="[1]")), "job.task.payload"),
        (spec(expires_at=T0 - timedelta(seconds=1)), "job.expires_at"),
        (spec(id="not-a-uuid"), "job.id"),
        (spec(run_expiry=timedelta(0)), "job.run_expiry"),
    ],
)
async def test_invalid_specs_name_the_field(stack: Stack, job_spec: JobSpec, field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await jobs.create_job(stack.deps, job_spec)
    assert caught.value.field == field


async def test_a_due_job_fires_once_with_a_derived_id(stack: Stack) -> None:
    job = await jobs.create_job(stack.deps, spec())
    due = job.next_execution
    assert due == datetime(2026, 3, 1, 12, 0, 1, tzinfo=UTC)
    stack.clock.now = due + timedelta(milliseconds=3)
    outcome = await jobs.fire_due(stack.deps, job, stack.clock.now)
    again = await jobs.fire_due(stack.deps, job, stack.clock.now)  # a stale second fire
    runs = await stack.runs(job.id)
    assert [r.id for r in runs] == [job.run_id(due)] == outcome.runs
    assert again.job is None  # lost the lock: nothing recorded
    run = runs[0]
    assert (run.job_id, run.schedule, run.is_schedule_active) == (job.id, EVERY_SECOND, True)
    assert (run.name, run.payload, run.state) == ("tick", '{"n": 1}', TaskState.PENDING)
    stored = await stack.job(job.id)
    assert stored.last_execution == due and stored.last_task_id == run.id
    assert stored.next_execution == due + timedelta(seconds=1)
    assert stored.version == job.version + 1


async def test_two_servers_fire_each_time_once(stack: Stack) -> None:
    job = await jobs.create_job(stack.deps, spec())
    loops = [CronLoop(stack.deps, cap=5), CronLoop(stack.server("s2"), cap=5)]
    for _ in range(10):
        stack.clock.advance(1)
        for loop in loops:
            await loop.tick()
    runs = await stack.runs(job.id)
    assert len(runs) == 10
    assert len({r.id for r in runs}) == 10
    assert {r.scheduler_id for r in runs} <= {"s1", "s2"}


async def test_a_loop_that_lost_the_lock_sleeps_until_the_following_time(stack: Stack) -> None:
    job = await jobs.create_job(stack.deps, spec("*/10 * * * * *"))
    stack.clock.now = job.next_execution or T0
    # Another server won this time but has not recorded it yet.
    assert await stack.deps.fire_lock.acquire(  # type: ignore[union-attr]
        f"giobba:cron:{job.id}:{to_ms(stack.clock.now)}", 30_000
    )
    delay = await CronLoop(stack.deps, cap=60).tick()
    assert delay == pytest.approx(10.0)
    assert await stack.runs(job.id) == []


async def test_missed_times_coalesce_into_one_run(stack: Stack) -> None:
    job = await jobs.create_job(stack.deps, spec())
    stack.clock.advance(5.2)  # down across 5 fire times
    await CronLoop(stack.deps).tick()
    runs = await stack.runs(job.id)
    latest = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
    assert [r.id for r in runs] == [job.run_id(latest)]
    assert (await stack.job(job.id)).next_execution == latest + timedelta(seconds=1)


async def test_skip_policy_runs_none_of_the_missed_times(stack: Stack) -> None:
    job = await jobs.create_job(stack.deps, spec("*/10 * * * * *", missed_policy=MissedPolicy.SKIP))
    stack.clock.advance(35)  # fires at :10 :20 :30 missed, now :35.5
    await CronLoop(stack.deps).tick()
    assert await stack.runs(job.id) == []
    nxt = (await stack.job(job.id)).next_execution
    assert nxt == datetime(2026, 3, 1, 12, 0, 40, tzinfo=UTC)


async def test_run_all_runs_each_missed_time_bounded(stack: Stack) -> None:
    job = await jobs.create_job(stack.deps, spec(missed_policy=MissedPolicy.RUN_ALL))
    stack.clock.advance(4)
    await CronLoop(stack.deps).tick()
    assert len(await stack.runs(job.id)) == 4
    stack.clock.advance(500)
    await CronLoop(stack.deps).tick()
    assert len(await stack.runs(job.id)) == 4 + jobs.MAX_RUN_ALL
    after = await stack.job(job.id)
    assert after.next_execution is not None and after.next_execution > stack.clock.now


async def test_latest_due_is_fast_after_a_long_downtime(stack: Stack) -> None:
    job = await jobs.create_job(stack.deps, spec())
    stack.clock.advance(7 * 86400)
    await CronLoop(stack.deps).tick()
    [run] = await stack.runs(job.id)
    assert run.id == job.run_id(stack.clock.now.replace(microsecond=0))


async def test_overlap_skip_waits_for_the_previous_run(stack: Stack) -> None:
    job = await jobs.create_job(stack.deps, spec(overlap_policy=OverlapPolicy.SKIP))
    loop = CronLoop(stack.deps)
    for _ in range(3):
        stack.clock.advance(1)
        await loop.tick()
    [first] = await stack.runs(job.id)  # still PENDING: the next two were skipped
    await stack.deps.repo.save(first.evolve(state=TaskState.COMPLETED, version=first.version + 1))
    stack.clock.advance(1)
    await loop.tick()
    assert len(await stack.runs(job.id)) == 2


async def test_a_job_past_its_end_deactivates(stack: Stack) -> None:
    end = T0 + timedelta(seconds=2.4)
    job = await jobs.create_job(stack.deps, spec(expires_at=end))
    assert job.upcoming(5) == [T0.replace(microsecond=0) + timedelta(seconds=s) for s in (1, 2)]
    loop = CronLoop(stack.deps)
    for _ in range(4):
        stack.clock.advance(1)
        await loop.tick()
    assert len(await stack.runs(job.id)) == 2
    after = await stack.job(job.id)
    assert not after.is_active and after.next_execution is None


async def test_starts_at_delays_the_first_fire(stack: Stack) -> None:
    start = datetime(2026, 3, 1, 13, 0, tzinfo=UTC)
    job = await jobs.create_job(stack.deps, spec("0 * * * *", starts_at=start))
    assert job.next_execution == start


async def test_pause_stops_and_resume_restarts_without_a_burst(stack: Stack) -> None:
    job = await jobs.create_job(stack.deps, spec())
    loop = CronLoop(stack.deps)
    stack.clock.advance(1)
    await loop.tick()
    paused = await jobs.pause_job(stack.deps, job.id)
    assert not paused.is_active and paused.upcoming(3) == []
    for _ in range(5):
        stack.clock.advance(1)
        await loop.tick()
    assert len(await stack.runs(job.id)) == 1
    resumed = await jobs.resume_job(stack.deps, job.id)
    assert resumed.next_execution == stack.clock.now.replace(microsecond=0) + timedelta(seconds=1)
    stack.clock.advance(1)
    await loop.tick()
    assert len(await stack.runs(job.id)) == 2


async def test_a_fire_racing_a_pause_keeps_the_pause(stack: Stack) -> None:
    job = await jobs.create_job(stack.deps, spec())
    stack.clock.advance(1)
    await jobs.pause_job(stack.deps, job.id)
    await jobs.fire_due(stack.deps, job, stack.clock.now)  # the loop read the job before
    after = await stack.job(job.id)
    assert not after.is_active and after.next_execution is None
    assert after.last_task_id == job.run_id(job.next_execution or T0)


async def test_trigger_runs_now_with_a_distinct_id(stack: Stack) -> None:
    job = await jobs.create_job(stack.deps, spec("0 0 1 1 *"))
    task = await jobs.trigger_job(stack.deps, job.id)
    assert task.job_id == job.id and task.eta == stack.clock.now
    assert task.id not in {job.run_id(t) for t in job.upcoming(3)}
    after = await stack.job(job.id)
    assert after.last_task_id == task.id and after.next_execution == job.next_execution


async def test_unknown_jobs_are_not_found(stack: Stack) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    for call in (jobs.get_job, jobs.pause_job, jobs.resume_job, jobs.delete_job, jobs.trigger_job):
        with pytest.raises(NotFound):
            await call(stack.deps, missing)


async def test_delete_keeps_the_runs(stack: Stack) -> None:
    job = await jobs.create_job(stack.deps, spec())
    stack.clock.advance(1)
    await CronLoop(stack.deps).tick()
    await jobs.delete_job(stack.deps, job.id)
    assert len(await stack.runs(job.id)) == 1
    stack.clock.advance(1)
    await CronLoop(stack.deps).tick()
    assert len(await stack.runs(job.id)) == 1


async def test_resume_of_an_ended_job_is_refused(stack: Stack) -> None:
    job = await jobs.create_job(stack.deps, spec(expires_at=T0 + timedelta(seconds=10)))
    await jobs.pause_job(stack.deps, job.id)
    stack.clock.advance(20)
    with pytest.raises(FailedPrecondition):
        await jobs.resume_job(stack.deps, job.id)


async def test_list_jobs_pages_in_creation_order(stack: Stack) -> None:
    created = []
    for _ in range(5):
        created.append((await jobs.create_job(stack.deps, spec())).id)
        stack.clock.advance(0.001)
    first = await jobs.list_jobs(stack.deps, 2, "")
    second = await jobs.list_jobs(stack.deps, 2, first.next_token)
    third = await jobs.list_jobs(stack.deps, 2, second.next_token)
    seen = [j.id for page in (first, second, third) for j in page.jobs]
    assert seen == created and third.next_token == ""
    with pytest.raises(InvalidArgument):
        await jobs.list_jobs(stack.deps, 2, "garbage")


async def test_add_task_with_a_schedule_creates_the_job_and_its_first_run(stack: Stack) -> None:
    end = T0 + timedelta(hours=1)
    task_spec = TaskSpec(name="report", schedule="*/5 * * * *", expires_at=end)
    [task] = await submit.submit(stack.deps, [task_spec])
    job = await stack.job(task.job_id)
    first = datetime(2026, 3, 1, 12, 5, tzinfo=UTC)
    assert task.is_schedule_active and task.schedule == "*/5 * * * *"
    assert task.id == job.run_id(first) and task.eta == first and task.expires_at is None
    assert job.expires_at == end and job.next_execution == first
    stack.clock.now = first + timedelta(milliseconds=5)
    await CronLoop(stack.deps).tick()  # the loop's fire of `first` is that same task
    assert [r.id for r in await stack.runs(job.id)] == [task.id]
    assert (await stack.job(job.id)).last_execution == first


async def test_add_task_with_a_bad_schedule_names_task_fields(stack: Stack) -> None:
    for task_spec, field in (
        (TaskSpec(name="r", schedule="* * * *"), "task.schedule"),
        (TaskSpec(name="r", schedule="* * * * *", timezone="Nowhere/City"), "task.timezone"),
        (TaskSpec(name="r", schedule="* * * * *", priority=-1), "task.priority"),
    ):
        with pytest.raises(InvalidArgument) as caught:
            await submit.submit(stack.deps, [task_spec])
        assert caught.value.field == field
    with pytest.raises(InvalidArgument) as caught:
        await submit.submit(stack.deps, [TaskSpec(name="r", schedule="* * * * *")], batch=True)
    assert caught.value.field == "tasks[0].schedule"


async def test_run_expiry_counts_from_the_fire_time(stack: Stack) -> None:
    job = await jobs.create_job(stack.deps, spec(run_expiry=timedelta(seconds=30)))
    stack.clock.advance(1)
    await CronLoop(stack.deps).tick()
    [run] = await stack.runs(job.id)
    assert run.expires_at == (job.next_execution or T0) + timedelta(seconds=30)


@pytest.mark.parametrize("stop", ["pause", "delete"])
async def test_pausing_or_deleting_revokes_a_run_made_ahead_of_its_time(
    stack: Stack, stop: str
) -> None:
    [task] = await submit.submit(stack.deps, [TaskSpec(name="r", schedule="*/5 * * * *")])
    if stop == "pause":
        await jobs.pause_job(stack.deps, task.job_id)
    else:
        await jobs.delete_job(stack.deps, task.job_id)
    run = await stack.deps.repo.get(task.id)
    assert run is not None and run.state is TaskState.REVOKED
    assert run.error == ("job paused" if stop == "pause" else "job deleted")
