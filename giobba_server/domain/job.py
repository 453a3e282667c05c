"""Job: a cron schedule plus the template of the task each fire creates.

A job's fire times come only from `CronSchedule` (the product's schedule code), so the
API, the loop and `GetJob`'s upcoming list can never disagree. Each scheduled run's task
id is derived from (job id, fire time): a time fired twice, by two servers or by a retry
after a crash, inserts one task and the second insert is refused by the repository.
"""

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from giobba_server.domain.errors import InvalidArgument
from giobba_server.domain.payload import MAX_PAYLOAD_BYTES, parse_object
from giobba_server.domain.schedule import CronSchedule, ScheduleError
from giobba_server.domain.spec import TaskSpec, _check_scalars, check_id, check_queue

MAX_UPCOMING = 100
# A fire time is read as whole seconds; one microsecond back lets a fire land exactly on
# `starts_at` or on the moment a job is resumed.
_TICK = timedelta(microseconds=1)


class MissedPolicy(StrEnum):
    COALESCE = "COALESCE"  # one run for all the times missed while no server ran
    SKIP = "SKIP"  # none: carry on from now
    RUN_ALL = "RUN_ALL"  # one run per missed time, bounded


class OverlapPolicy(StrEnum):
    ALLOW = "ALLOW"
    SKIP = "SKIP"  # no run while the previous one is PENDING or RUNNING


@dataclass(frozen=True)
class JobSpec:
    """What a producer asks for; `build_job` validates it into a Job."""

    task: TaskSpec
    schedule: str
    timezone: str = ""
    id: str = ""
    starts_at: datetime | None = None
    expires_at: datetime | None = None
    missed_policy: MissedPolicy = MissedPolicy.COALESCE
    overlap_policy: OverlapPolicy = OverlapPolicy.ALLOW
    run_expiry: timedelta | None = None


@dataclass(frozen=True)
class Job:
    id: str
    schedule: str
    timezone: str
    task: TaskSpec  # the template: no id, eta, parent, schedule or expiry of its own
    created_at: datetime
    updated_at: datetime
    starts_at: datetime | None = None
    expires_at: datetime | None = None  # the job's end
    missed_policy: MissedPolicy = MissedPolicy.COALESCE
    overlap_policy: OverlapPolicy = OverlapPolicy.ALLOW
    run_expiry: timedelta | None = None
    is_active: bool = True
    last_execution: datetime | None = None
    next_execution: datetime | None = None
    last_task_id: str = ""
    version: int = 1  # bumped on every write; the store refuses a write from a stale read

    @property
    def cron(self) -> CronSchedule:
        return CronSchedule(self.schedule, self.timezone)

    def evolve(self, **changes: object) -> "Job":
        return replace(self, **changes)  # type: ignore[arg-type]

    def next_fire(self, after: datetime) -> datetime | None:
        """The first fire strictly after `after` (and not before `starts_at`), or None when
        the job's end comes first."""
        if self.starts_at is not None and after < self.starts_at:
            after = self.starts_at - _TICK
        try:
            moment = self.cron.next_after(after)
        except OverflowError:
            return None
        if self.expires_at is not None and moment > self.expires_at:
            return None
        return moment

    def upcoming(self, count: int) -> list[datetime]:
        """The next `count` fire times of an active job, from its next execution on."""
        if not self.is_active or self.next_execution is None or count <= 0:
            return []
        times = [self.next_execution]
        while len(times) < count:
            moment = self.next_fire(times[-1])
            if moment is None:
                break
            times.append(moment)
        return times

    def run_id(self, fire_time: datetime) -> str:
        """The task id of the scheduled run at `fire_time`: the same on every server."""
        return str(uuid.uuid5(uuid.UUID(self.id), fire_time.isoformat()))

    def run_spec(self, task_id: str, fire_time: datetime, eta: datetime) -> TaskSpec:
        """The spec of one run; its expiry counts from the fire time."""
        expires = fire_time + self.run_expiry if self.run_expiry is not None else None
        return replace(self.task, id=task_id, eta=eta, expires_at=expires)


def check_schedule(expression: str, timezone: str, prefix: str) -> CronSchedule:
    """Parse in the job's zone; errors name `<prefix>schedule` or `<prefix>timezone`."""
    if not expression.strip():
        raise InvalidArgument(f"{prefix}schedule", "must not be empty")
    try:
        return CronSchedule(expression.strip(), timezone)
    except ScheduleError as exc:
        raise InvalidArgument(f"{prefix}{exc.field}", exc.reason) from None


def check_template(spec: TaskSpec, prefix: str, max_payload: int = MAX_PAYLOAD_BYTES) -> TaskSpec:
    """A run template must leave per-run fields to the job."""
    for name in ("id", "parent_id", "schedule", "timezone"):
        if getattr(spec, name):
            raise InvalidArgument(f"{prefix}{name}", "must be empty in a job's task template")
    for name in ("eta", "expires_at"):
        if getattr(spec, name) is not None:
            hint = "starts_at" if name == "eta" else "run_expiry or the job's expires_at"
            raise InvalidArgument(f"{prefix}{name}", f"must be unset in a template (use {hint})")
    _check_scalars(spec, prefix)
    parse_object(spec.payload, f"{prefix}payload", max_payload)
    return replace(
        spec,
        name=spec.name.strip(),
        payload=spec.payload or "{}",
        queue=check_queue(f"{prefix}queue", spec.queue),
    )


def build_job(
    spec: JobSpec,
    *,
    now: datetime,
    default_timezone: str,
    prefix: str = "job.",
    template_prefix: str | None = None,
) -> Job:
    """Validate a spec and make its active Job, due at its first fire time. Errors name
    `<prefix>field` and `<template_prefix>field` (default `<prefix>task.`)."""
    timezone = spec.timezone.strip() or default_timezone or "UTC"
    expression = spec.schedule.strip()
    check_schedule(expression, timezone, prefix)
    template = check_template(
        spec.task, f"{prefix}task." if template_prefix is None else template_prefix
    )
    _check_window(spec, now, prefix)
    if spec.run_expiry is not None and spec.run_expiry <= timedelta(0):
        raise InvalidArgument(f"{prefix}run_expiry", "must be positive")
    job = Job(
        id=check_id(f"{prefix}id", spec.id) if spec.id else str(uuid.uuid4()),
        schedule=expression,
        timezone=timezone,
        task=template,
        created_at=now,
        updated_at=now,
        starts_at=spec.starts_at,
        expires_at=spec.expires_at,
        missed_policy=spec.missed_policy,
        overlap_policy=spec.overlap_policy,
        run_expiry=spec.run_expiry,
    )
    first = job.next_fire(now)
    if first is None:
        if spec.expires_at is not None:
            raise InvalidArgument(f"{prefix}expires_at", "the schedule never fires before the end")
        # No end: the start is so late that no fire time is representable after it.
        raise InvalidArgument(f"{prefix}starts_at", "the schedule never fires after the start")
    return job.evolve(next_execution=first)


def _check_window(spec: JobSpec, now: datetime, prefix: str) -> None:
    if spec.expires_at is None:
        return
    if spec.expires_at <= now:
        raise InvalidArgument(f"{prefix}expires_at", "is already in the past")
    if spec.starts_at is not None and spec.starts_at >= spec.expires_at:
        raise InvalidArgument(f"{prefix}starts_at", "must be before expires_at")
