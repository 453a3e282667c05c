"""Issue 5's "what must hold" for cron jobs, through real `giobba serve` processes.

Waits are on conditions with deadlines. Where a test must show that something does *not*
happen (a paused job), a second "witness" job proves the cron loop kept firing meanwhile.
Every scheduled run's `eta` is its fire time, so `created_at - eta` is its lateness and
the fire time a run stands for can be read back from the task.
"""

import contextlib
import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from giobba_client import InvalidArgument, NotFound
from giobba_client.models import Task
from tests.e2e.harness import FAST_CONFIG, Stack, stack, wait_until

CRON_CONFIG = FAST_CONFIG + "jobsTimeoutRefresh: 1s\n"
EVERY_SECOND = "*/1 * * * * *"


@pytest.fixture
def cron(backend_urls: tuple[str, str], tmp_path: Path) -> Iterator[Stack]:
    database_url, broker_url = backend_urls
    with stack(tmp_path, database_url, broker_url, config=CRON_CONFIG) as st:
        st.start_server()
        yield st


def runs(st: Stack, job_id: str) -> list[Task]:
    page = st.client().list_tasks(job_id=job_id, page_size=1000)
    return sorted(page.tasks, key=lambda t: t.eta or t.created_at or datetime.min)


def fire_times(tasks: list[Task]) -> list[datetime]:
    return [t.eta for t in tasks if t.eta is not None]


def wait_runs(st: Stack, job_id: str, count: int, timeout: float = 20) -> list[Task]:
    def enough() -> list[Task]:
        found = runs(st, job_id)
        return found if len(found) >= count else []

    return wait_until(
        enough,
        timeout,
        interval=0.05,
        what=f"{count} runs of job {job_id}",
    )


def whole_second(after: float) -> datetime:
    moment = datetime.now(UTC) + timedelta(seconds=after)
    return moment.replace(microsecond=0) + timedelta(seconds=1)


# -- schedules, through GetJob (the product's own schedule code) -------------------------


def upcoming_from(st: Stack, schedule: str, zone: str, start: str, count: int) -> list[str]:
    starts_at = datetime.fromisoformat(start)
    job = st.client().create_job(schedule, "noop", timezone=zone, starts_at=starts_at)
    fetched = st.client().get_job(job.id, upcoming=count)
    return [t.isoformat().replace("+00:00", "Z") for t in fetched.upcoming]


def test_fall_back_fixed_time_fires_once(cron: Stack) -> None:
    # The 2026 case, a year on (2026 is past by now): fall back is 2027-11-07.
    assert upcoming_from(cron, "30 1 * * *", "America/New_York", "2027-11-06T12:00-04:00", 3) == [
        "2027-11-07T05:30:00Z",
        "2027-11-08T06:30:00Z",
        "2027-11-09T06:30:00Z",
    ]


def test_spring_forward_gap_fires_right_after_the_jump(cron: Stack) -> None:
    assert upcoming_from(
        cron, "30 2 * * *", "America/New_York", "2027-03-14T06:30:00+00:00", 3
    ) == [
        "2027-03-14T07:00:00Z",
        "2027-03-15T06:30:00Z",
        "2027-03-16T06:30:00Z",
    ]


def test_day_of_month_or_day_of_week(cron: Stack) -> None:
    # December 2027: the 1st is a Wednesday, its Tuesdays are the 7th, 14th, 21st and 28th.
    times = upcoming_from(cron, "0 13 1-7 * 2", "UTC", "2027-12-01T00:00:00+00:00", 10)
    assert [t[:13] for t in times] == [f"2027-12-{d:02d}T13" for d in (*range(1, 8), 14, 21, 28)]


def test_step_hours_fire_at_odd_hours_only(cron: Stack) -> None:
    times = upcoming_from(cron, "0 1-23/2 * * *", "UTC", "2027-01-01T00:00:00+00:00", 24)
    assert {int(t[11:13]) for t in times} == set(range(1, 24, 2))


@pytest.mark.parametrize(
    ("schedule", "zone", "field"),
    [
        ("61 * * * *", "UTC", "job.schedule"),
        ("* * * *", "UTC", "job.schedule"),
        ("0 0 * * *", "Mars/Olympus_Mons", "job.timezone"),
        ("0 0 15W * *", "UTC", "job.schedule"),
        ("0 0 ? * MON", "UTC", "job.schedule"),
    ],
)
def test_bad_schedules_are_invalid_argument_naming_the_field(
    cron: Stack, schedule: str, zone: str, field: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        cron.client().create_job(schedule, "noop", timezone=zone)
    assert str(caught.value).startswith(f"{field}:") or f" {field}:" in str(caught.value)
    result = cron.cli("job", "add", "noop", "--schedule", schedule, "--tz", zone)
    assert result.returncode == 1 and field in result.stderr


# -- firing ------------------------------------------------------------------------------


def test_every_second_job_fires_on_time(cron: Stack) -> None:
    job = cron.client().create_job(EVERY_SECOND, "noop")
    found = wait_runs(cron, job.id, 3)
    times = fire_times(found)
    assert all(t.microsecond == 0 for t in times)
    assert len(set(times)) == len(times)
    for task in found:
        assert task.job_id == job.id and task.is_schedule_active
        assert task.created_at is not None and task.eta is not None
        assert task.created_at - task.eta < timedelta(seconds=1)


def test_pause_stops_runs_and_resume_restarts_without_a_burst(cron: Stack) -> None:
    client = cron.client()
    job = client.create_job(EVERY_SECOND, "noop")
    witness = client.create_job(EVERY_SECOND, "noop")
    wait_runs(cron, job.id, 2)
    client.pause_job(job.id)
    paused = len(runs(cron, job.id))  # a fire in flight as we paused may still land
    seen = len(runs(cron, witness.id))
    wait_runs(cron, witness.id, seen + 4)
    assert len(runs(cron, job.id)) <= paused + 1
    stopped = len(runs(cron, job.id))
    resumed_at = datetime.now(UTC)
    resumed = client.resume_job(job.id)
    assert resumed.next_execution is not None and resumed.next_execution > resumed_at
    seen = len(runs(cron, witness.id))
    wait_runs(cron, witness.id, seen + 3)
    after = [t for t in runs(cron, job.id)[stopped:]]
    assert 1 <= len(after) <= 4, [t.eta for t in after]
    assert all(t.eta is not None and t.eta > resumed_at for t in after)


def test_trigger_get_delete_and_not_found(cron: Stack) -> None:
    client = cron.client()
    job = client.create_job("0 0 1 1 *", "noop", timezone="Europe/Rome", payload={"a": 1})
    task = client.trigger_job(job.id)
    assert task.job_id == job.id and task.payload == {"a": 1}
    assert client.get_job(job.id).last_task_id == task.id
    shown = cron.cli("job", "get", job.id)
    assert shown.returncode == 0, shown.stderr
    assert "Europe/Rome / UTC" in shown.stdout
    assert "+01:00  " in shown.stdout and "T23:00:00Z" in shown.stdout
    listed = cron.cli("job", "list")
    assert job.id in listed.stdout
    client.delete_job(job.id)
    assert [t.id for t in runs(cron, job.id)] == [task.id]
    missing = "00000000-0000-4000-8000-000000000000"
    for call in (client.get_job, client.pause_job, client.resume_job, client.trigger_job):
        with pytest.raises(NotFound):
            call(missing)
    assert cron.cli("job", "delete", missing).returncode == 1


def test_add_task_with_a_schedule_creates_the_job(cron: Stack) -> None:
    end = whole_second(4)
    result = cron.cli(
        "task", "add", "noop", "--schedule", EVERY_SECOND, "--expires", end.isoformat()
    )
    assert result.returncode == 0, result.stderr
    first = cron.client().get_task(result.stdout.strip())
    assert first.job_id and first.is_schedule_active and first.schedule == EVERY_SECOND
    job = cron.client().get_job(first.job_id)
    assert job.expires_at == end and job.last_task_id == first.id
    # The job runs to its end, then deactivates itself.
    wait_until(lambda: not cron.client().get_job(first.job_id).is_active, 20, what="job end")
    times = fire_times(runs(cron, first.job_id))
    assert times[0] == first.eta and times[-1] <= end
    assert len(times) == len(set(times))


def test_downtime_coalesces_into_one_run_then_the_normal_cadence(tmp_path: Path) -> None:
    with stack(tmp_path, config=CRON_CONFIG) as st:
        st.start_server()
        job = st.client().create_job(EVERY_SECOND, "noop")
        wait_runs(st, job.id, 2)
        st.stop_server()
        down_from = datetime.now(UTC)
        # Down across five fire times: the clock itself is the condition here.
        wait_until(lambda: datetime.now(UTC) > down_from + timedelta(seconds=5.2), 10)
        restarted = datetime.now(UTC)
        st.start_server()

        def since_restart() -> list[Task]:
            found = [t for t in runs(st, job.id) if t.created_at and t.created_at > down_from]
            return found if len(found) >= 4 else []

        after = wait_until(since_restart, 20, what="4 runs after the restart")
        catch_up = [t for t in after if t.eta is not None and t.eta < restarted]
        assert len(catch_up) == 1, [t.eta for t in after]
        assert catch_up[0].eta is not None and catch_up[0].eta > down_from + timedelta(seconds=4)
        cadence = fire_times(after[1:])
        steps = {(b - a).total_seconds() for a, b in itertools.pairwise(cadence)}
        assert steps == {1.0}, cadence


# -- two servers on one broker and one repository ------------------------------------------


@pytest.fixture(params=["redis-sqlite", "redis-mongo"])
def shared_urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """Backends two servers can share: Redis for live state and the fire lock, and a
    repository both reach (one SQLite file in WAL mode, or MongoDB)."""
    redis = request.getfixturevalue("clean_redis")
    if request.param == "redis-sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}", redis.url
    mongo = request.getfixturevalue("mongo_server")
    database = request.getfixturevalue("mongo_database")
    return f"{mongo.url.rstrip('/')}/{database}", redis.url


@contextlib.contextmanager
def second_server(st: Stack) -> Iterator[Stack]:
    other = Stack(st.tmp / "second", dict(st.env))
    other.tmp.mkdir()
    other.config.write_text(st.config.read_text())
    try:
        other.start_server()
        yield other
    except BaseException:
        print(other.logs())
        raise
    finally:
        other.close()


def test_two_servers_fire_each_second_once(shared_urls: tuple[str, str], tmp_path: Path) -> None:
    database_url, broker_url = shared_urls
    with stack(tmp_path, database_url, broker_url, config=CRON_CONFIG) as st:
        st.start_server()
        with second_server(st) as other:
            start = whole_second(2)
            end = start + timedelta(seconds=9.5)  # fires at start+0 ... start+9: ten
            job = st.client().create_job(EVERY_SECOND, "noop", starts_at=start, expires_at=end)
            assert other.client().get_job(job.id).id == job.id
            deadline = time.monotonic() + 30
            wait_until(
                lambda: not st.client().get_job(job.id).is_active,
                max(deadline - time.monotonic(), 1),
                what="the job to reach its end",
            )
            found = runs(st, job.id)
            times = fire_times(found)
            assert 9 <= len(found) <= 11, times
            assert len(set(times)) == len(times) == len({t.id for t in found})
            assert all(start <= t <= end for t in times)
            servers = {t.scheduler_id for t in found}
            print(
                f"runs by server: { {s: sum(t.scheduler_id == s for t in found) for s in servers} }"
            )
