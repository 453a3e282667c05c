"""The Job model, its codec and the embedded job store and fire lock.

Fire times come from the product's own schedule code through `Job.upcoming`, the same
path GetJob and the cron loop use, so the issue's DST cases are checked end to end here.
"""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from giobba_server.broker.memory_lock import MemoryFireLock
from giobba_server.domain.errors import InvalidArgument
from giobba_server.domain.job import Job, JobSpec, MissedPolicy, OverlapPolicy, build_job
from giobba_server.domain.spec import TaskSpec
from giobba_server.domain.task import StartMode
from giobba_server.store.job_codec import job_from_doc, job_to_doc
from giobba_server.store.sqlite_jobs import SqliteJobRepository


def job_at(schedule: str, zone: str, now: datetime) -> Job:
    spec = JobSpec(task=TaskSpec(name="t"), schedule=schedule, timezone=zone)
    return build_job(spec, now=now, default_timezone="UTC")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def test_fall_back_day_fires_once() -> None:
    job = job_at("30 1 * * *", "America/New_York", utc("2026-10-31T12:00-04:00"))
    assert job.upcoming(3) == [
        utc("2026-11-01T05:30Z"),
        utc("2026-11-02T06:30Z"),
        utc("2026-11-03T06:30Z"),
    ]


def test_spring_forward_gap_fires_right_after_the_jump() -> None:
    job = job_at("30 2 * * *", "America/New_York", utc("2026-03-08T06:30Z"))
    assert job.upcoming(3) == [
        utc("2026-03-08T07:00Z"),
        utc("2026-03-09T06:30Z"),
        utc("2026-03-10T06:30Z"),
    ]


def test_day_of_month_or_day_of_week() -> None:
    job = job_at("0 13 1-7 * 2", "UTC", utc("2026-12-01T00:00Z"))
    days = [t.day for t in job.upcoming(11)]
    assert days == [1, 2, 3, 4, 5, 6, 7, 8, 15, 22, 29]
    assert {t.hour for t in job.upcoming(11)} == {13}


def test_step_hours_fire_at_odd_hours_only() -> None:
    job = job_at("0 1-23/2 * * *", "UTC", utc("2026-05-01T00:00Z"))
    assert [t.hour for t in job.upcoming(12)] == list(range(1, 24, 2))


def test_run_ids_are_stable_and_distinct() -> None:
    job = job_at("* * * * * *", "UTC", utc("2026-05-01T00:00Z"))
    first, second = job.upcoming(2)
    assert job.run_id(first) == job.run_id(first.astimezone(UTC)) != job.run_id(second)


def full_job() -> Job:
    template = TaskSpec(
        name="t",
        payload='{"a": [1, 2]}',
        queue="q",
        priority=7,
        start_mode=StartMode.MANUAL,
        max_retries=3,
        callback="http://x/cb",
        timeout=timedelta(seconds=9),
        retry_backoff=timedelta(seconds=2),
    )
    spec = JobSpec(
        task=template,
        schedule="*/5 * * * *",
        timezone="Europe/Rome",
        starts_at=utc("2026-05-01T00:00Z"),
        expires_at=utc("2027-05-01T00:00Z"),
        missed_policy=MissedPolicy.RUN_ALL,
        overlap_policy=OverlapPolicy.SKIP,
        run_expiry=timedelta(minutes=3),
    )
    return build_job(spec, now=utc("2026-04-01T00:00Z"), default_timezone="UTC")


def test_codec_round_trips() -> None:
    job = full_job().evolve(last_execution=utc("2026-04-01T00:00Z"), last_task_id="x")
    assert job_from_doc(job_to_doc(job), lambda v: v) == job


async def test_sqlite_store_guards_versions(tmp_path: Path) -> None:
    store = SqliteJobRepository(str(tmp_path / "jobs.db"))
    await store.open()
    try:
        job = full_job()
        await store.insert(job)
        assert await store.get(job.id) == job
        newer = job.evolve(is_active=False, version=job.version + 1)
        assert await store.save(newer)
        assert not await store.save(job.evolve(version=job.version + 1))  # a stale read
        assert await store.get(job.id) == newer
        assert list(await store.upcoming(utc("2030-01-01T00:00Z"), 10)) == []
        assert await store.delete(job.id) and not await store.delete(job.id)
        assert not await store.save(newer.evolve(version=newer.version + 1))
    finally:
        await store.close()


async def test_store_lists_due_jobs_earliest_first(tmp_path: Path) -> None:
    store = SqliteJobRepository(str(tmp_path / "jobs.db"))
    await store.open()
    try:
        now = utc("2026-05-01T00:00:00.5Z")
        late = job_at("0 * * * *", "UTC", now)
        soon = job_at("* * * * * *", "UTC", now)
        for job in (late, soon):
            await store.insert(job)
        due = await store.upcoming(now + timedelta(hours=2), 10)
        assert [j.id for j in due] == [soon.id, late.id]
        assert [j.id for j in await store.upcoming(now + timedelta(seconds=1), 10)] == [soon.id]
    finally:
        await store.close()


async def test_memory_lock_is_taken_once_until_it_expires() -> None:
    now = [1000]
    lock = MemoryFireLock(lambda: now[0])
    assert await lock.acquire("k", 50)
    assert not await lock.acquire("k", 50)
    assert await lock.acquire("other", 50)
    now[0] += 50
    assert await lock.acquire("k", 50)


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "Australia/Lord_Howe"])
def test_upcoming_is_strictly_increasing(zone: str) -> None:
    job = job_at("*/7 * * * *", zone, utc("2026-04-04T10:00Z"))
    times = job.upcoming(100)
    assert len(times) == 100 and times == sorted(set(times))


@pytest.mark.parametrize(
    ("starts", "expires", "field"),
    [
        ("9999-12-31T23:59:30Z", None, "job.starts_at"),  # no fire time after it fits
        ("2026-06-01T00:00:10Z", "2026-06-01T00:00:30Z", "job.expires_at"),  # none before the end
    ],
)
def test_a_job_that_never_fires_names_the_field_that_stops_it(
    starts: str, expires: str | None, field: str
) -> None:
    spec = JobSpec(
        task=TaskSpec(name="t"),
        schedule="0 0 * * *",
        timezone="UTC",
        starts_at=utc(starts),
        expires_at=utc(expires) if expires else None,
    )
    with pytest.raises(InvalidArgument) as caught:
        build_job(spec, now=utc("2026-05-01T00:00Z"), default_timezone="UTC")
    assert caught.value.field == field
