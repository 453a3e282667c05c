"""Cron job use cases: create, read, pause/resume, delete, trigger, and firing due times.

Firing a time is: take the broker's fire lock for (job, time), create the run with the id
derived from (job, time), then record the fire on the job. The lock makes one server fire
a time however many run; the id makes a second fire of the same time (a lock that expired,
a crash between insert and save) insert nothing. The job's own record is updated with a
version guard and re-read on conflict, so a fire never undoes a pause or a resume.
"""

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from giobba_server.domain.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from giobba_server.domain.job import (
    MAX_UPCOMING,
    Job,
    JobSpec,
    MissedPolicy,
    OverlapPolicy,
    build_job,
)
from giobba_server.domain.job_ports import FireLock, JobPage, JobRepository, fire_key
from giobba_server.domain.ports import TaskFilter, parse_page_token
from giobba_server.domain.spec import TaskSpec, build_task
from giobba_server.domain.task import Task, TaskState
from giobba_server.services.context import Deps
from giobba_server.services.submit import persist
from giobba_server.services.transitions import revoke_pending

log = logging.getLogger("giobba.cron")

MAX_RUN_ALL = 100  # RUN_ALL catches up at most this many missed times per fire
# Under SKIP, a time this late still counts as "now", not as missed during downtime.
MISFIRE_GRACE = timedelta(seconds=1)
# How long a fire time stays claimed; past it, another server may retry a time whose
# winner died before recording it (the run id keeps that retry from duplicating).
LOCK_TTL = timedelta(seconds=30)
SAVE_ATTEMPTS = 8
MAX_PAGE, DEFAULT_PAGE = 1000, 100
_LIVE = (TaskState.PENDING, TaskState.RUNNING)


def job_store(deps: Deps) -> JobRepository:
    if deps.jobs is None:
        raise Unavailable("jobs: no job store is configured")
    return deps.jobs


def _lock(deps: Deps) -> FireLock:
    if deps.fire_lock is None:
        raise Unavailable("jobs: no fire lock is configured")
    return deps.fire_lock


# -- create, read, control -------------------------------------------------------------


async def create_job(deps: Deps, spec: JobSpec) -> Job:
    now = deps.clock()
    job = build_job(spec, now=now, default_timezone=deps.settings.default_timezone)
    await job_store(deps).insert(job)
    deps.jobs_changed()
    return job


async def create_from_task(deps: Deps, spec: TaskSpec) -> Task:
    """The seed's way: AddTask with `schedule` creates the job (`expires_at` is its end,
    `eta` its start) and answers with its first run, created now, due at its fire time."""
    if spec.parent_id:
        raise InvalidArgument("task.parent_id", "a scheduled task cannot have a parent")
    template = replace(spec, id="", eta=None, expires_at=None, schedule="", timezone="")
    job_spec = JobSpec(
        task=template,
        schedule=spec.schedule,
        timezone=spec.timezone,
        id=spec.id,
        starts_at=spec.eta,
        expires_at=spec.expires_at,
    )
    now = deps.clock()
    job = build_job(
        job_spec,
        now=now,
        default_timezone=deps.settings.default_timezone,
        prefix="task.",
        template_prefix="task.",
    )
    first = job.next_execution
    assert first is not None  # build_job guarantees a first fire
    job = job.evolve(last_task_id=job.run_id(first))
    await job_store(deps).insert(job)
    try:
        task = _run_task(deps, job, first, eta=first, now=now)
        await persist(deps, [task])
    except BaseException:
        await job_store(deps).delete(job.id)
        raise
    deps.jobs_changed()
    return task


async def get_job(deps: Deps, job_id: str) -> Job:
    if not job_id:
        raise InvalidArgument("id", "must not be empty")
    job = await job_store(deps).get(job_id)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return job


def upcoming(job: Job, count: int) -> list[datetime]:
    if not 0 <= count <= MAX_UPCOMING:
        raise InvalidArgument("upcoming", f"{count} is out of range 0-{MAX_UPCOMING}")
    return job.upcoming(count)


async def list_jobs(deps: Deps, page_size: int, token: str) -> JobPage:
    if not 0 <= page_size <= MAX_PAGE:
        raise InvalidArgument("page_size", f"{page_size} is out of range 0-{MAX_PAGE}")
    if token and parse_page_token(token) is None:
        raise InvalidArgument("page_token", "is not a token from a previous page")
    return await job_store(deps).page(page_size or DEFAULT_PAGE, token)


async def pause_job(deps: Deps, job_id: str) -> Job:
    job = await _update(deps, job_id, lambda job: job.evolve(is_active=False, next_execution=None))
    await _revoke_future_runs(deps, job_id, "job paused")
    return job


async def _revoke_future_runs(deps: Deps, job_id: str, reason: str) -> None:
    """Runs created ahead of their time (`AddTask` with a schedule makes the first one at
    once) must not fire once the job is paused or deleted; runs already due stay."""
    now, token = deps.clock(), ""
    flt = TaskFilter(states=frozenset({TaskState.PENDING}), job_id=job_id)
    while True:
        page = await deps.repo.query(flt, 500, token)
        for task in page.tasks:
            if task.eta is not None and task.eta > now:
                await revoke_pending(deps, task, reason)
        if not page.next_token:
            return
        token = page.next_token


async def resume_job(deps: Deps, job_id: str) -> Job:
    """Active again from now on: the times missed while paused are not run."""
    now = deps.clock()

    def resume(job: Job) -> Job:
        if job.is_active:
            return job
        following = job.next_fire(now)
        if following is None:
            raise FailedPrecondition(f"job {job.id} has ended (expires_at passed)")
        return job.evolve(is_active=True, next_execution=following)

    job = await _update(deps, job_id, resume)
    deps.jobs_changed()
    return job


async def delete_job(deps: Deps, job_id: str) -> None:
    """The job goes; its runs stay, listable by job_id."""
    if not job_id:
        raise InvalidArgument("id", "must not be empty")
    if not await job_store(deps).delete(job_id):
        raise NotFound(f"job {job_id} not found")
    await _revoke_future_runs(deps, job_id, "job deleted")


async def trigger_job(deps: Deps, job_id: str) -> Task:
    """One run now, outside the schedule (a random id, never a scheduled run's)."""
    job = await get_job(deps, job_id)
    now = deps.clock()
    task = _run_task(deps, job, now, eta=now, now=now, task_id=str(uuid.uuid4()))
    await persist(deps, [task])

    def record(current: Job) -> Job:
        return current.evolve(last_execution=now, last_task_id=task.id)

    await _update(deps, job_id, record)
    return task


async def _update(deps: Deps, job_id: str, change: Callable[[Job], Job]) -> Job:
    """Read, change, write if nobody wrote in between; otherwise read again."""
    store = job_store(deps)
    for _ in range(SAVE_ATTEMPTS):
        job = await get_job(deps, job_id)
        changed = change(job)
        if changed is job:
            return job
        changed = changed.evolve(version=job.version + 1, updated_at=deps.clock())
        if await store.save(changed):
            return changed
    raise Unavailable(f"job {job_id} keeps changing; try again")


# -- firing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FirePlan:
    times: list[datetime]  # the times to run, in order
    last_due: datetime  # the latest due time considered (handled after this fire)
    next_execution: datetime | None  # None: the job has ended


@dataclass(frozen=True)
class FireOutcome:
    job: Job | None  # the job as recorded, None if another server fired (or it was deleted)
    last_due: datetime
    next_execution: datetime | None
    runs: list[str]


def plan_fires(job: Job, now: datetime) -> FirePlan:
    """Which due times of a job (next_execution <= now) to run, by its missed policy."""
    first = job.next_execution
    if first is None or first > now:
        raise ValueError("plan_fires needs a due job")
    if job.missed_policy is MissedPolicy.RUN_ALL:
        times = [first, *_fires_between(job, first, now, MAX_RUN_ALL - 1)]
        last = latest_due(job, times[-1], now)
        if last != times[-1]:
            log.warning("job %s: catching up only %d missed times", job.id, len(times))
    else:
        last = latest_due(job, first, now)
        times = [last]
        if job.missed_policy is MissedPolicy.SKIP and now - last > MISFIRE_GRACE:
            times = []
    return FirePlan(times, last, job.next_fire(now))


def _fires_between(job: Job, after: datetime, until: datetime, limit: int) -> list[datetime]:
    times: list[datetime] = []
    while len(times) < limit:
        moment = job.next_fire(times[-1] if times else after)
        if moment is None or moment > until:
            break
        times.append(moment)
    return times


def latest_due(job: Job, first: datetime, now: datetime) -> datetime:
    """The last fire time in [first, now]. Searches back from now in doubling windows, so
    a week of missed every-second fires costs a few dozen schedule steps, not 600,000."""
    following = job.next_fire(first)
    if following is None or following > now:
        return first
    window = timedelta(seconds=1)
    while True:
        start = now - window
        candidate = first if start <= first else job.next_fire(start)
        if candidate is not None and candidate <= now:
            later = _fires_between(job, candidate, now, 10**9)
            return later[-1] if later else candidate
        window *= 2


async def fire_due(deps: Deps, job: Job, now: datetime) -> FireOutcome:
    """Run a due job's times (as `plan_fires` picks them) that this server wins."""
    plan = plan_fires(job, now)
    won = not plan.times  # nothing to run: any server may move the job on
    runs: list[str] = []
    fired: datetime | None = None
    for moment in plan.times:
        if not await _lock(deps).acquire(fire_key(job.id, moment), _ms(LOCK_TTL)):
            continue
        won = True
        run = await _fire_one(deps, job, moment, now, runs[-1] if runs else job.last_task_id)
        if run:
            runs.append(run)
            fired = moment
    if not won:
        return FireOutcome(None, plan.last_due, plan.next_execution, runs)
    recorded = await _record(deps, job.id, plan, fired, runs[-1] if runs else "")
    return FireOutcome(recorded, plan.last_due, plan.next_execution, runs)


async def _fire_one(deps: Deps, job: Job, moment: datetime, now: datetime, previous: str) -> str:
    """Create the run for `moment`; "" when overlap or run expiry says not to."""
    task_id = job.run_id(moment)
    if job.overlap_policy is OverlapPolicy.SKIP and previous and previous != task_id:
        earlier = await deps.repo.get(previous)
        if earlier is not None and earlier.state in _LIVE:
            log.info("job %s: skipping %s, run %s is %s", job.id, moment, previous, earlier.state)
            return ""
    if job.run_expiry is not None and moment + job.run_expiry <= now:
        log.info("job %s: run for %s would already be expired; skipped", job.id, moment)
        return ""
    try:
        # eta = the fire time: due at once, and `created_at - eta` is the fire's lateness.
        run = _run_task(deps, job, moment, eta=min(moment, now), now=now, task_id=task_id)
        await persist(deps, [run])
    except AlreadyExists:
        log.debug("job %s: %s already fired (run %s)", job.id, moment, task_id)
    return task_id


def _run_task(
    deps: Deps, job: Job, moment: datetime, *, eta: datetime, now: datetime, task_id: str = ""
) -> Task:
    spec = job.run_spec(task_id or job.run_id(moment), moment, eta)
    task = build_task(
        spec, now=now, seq=deps.next_seq(), scheduler_id=deps.settings.server_id, prefix="job.task."
    )
    return task.evolve(job_id=job.id, schedule=job.schedule, is_schedule_active=job.is_active)


async def _record(
    deps: Deps, job_id: str, plan: FirePlan, fired: datetime | None, run: str
) -> Job | None:
    """Write the fire onto the job as it is now (it may have been paused meanwhile)."""

    def apply(job: Job) -> Job:
        changes: dict[str, object] = {}
        if fired is not None and (job.last_execution is None or fired >= job.last_execution):
            changes.update(last_execution=fired, last_task_id=run)
        if job.is_active and plan.next_execution is None:
            changes.update(is_active=False, next_execution=None)
        elif job.is_active and (job.next_execution or plan.last_due) <= plan.last_due:
            changes.update(next_execution=plan.next_execution)
        return job.evolve(**changes) if changes else job

    try:
        return await _update(deps, job_id, apply)
    except NotFound:
        return None  # deleted while firing: the runs stay, the job does not come back


def _ms(span: timedelta) -> int:
    return int(span.total_seconds() * 1000)
