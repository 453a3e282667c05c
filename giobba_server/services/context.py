"""What every use case shares: the ports, the settings, and one way to record a move."""

import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from giobba_server.domain.clock import to_ms_not_before, utcnow
from giobba_server.domain.job_ports import FireLock, JobRepository
from giobba_server.domain.outbox import CallbackQueue
from giobba_server.domain.ports import (
    ActivityEvent,
    Broker,
    Feed,
    LiveEntry,
    Registry,
    Repository,
    TaskRef,
)
from giobba_server.domain.retry import DEFAULT_BASE, DEFAULT_CAP
from giobba_server.domain.task import Task, TaskState
from giobba_server.services.cancels import CancelHub
from giobba_server.services.mending import Mender, Step


@dataclass(frozen=True)
class Settings:
    server_id: str
    lease: timedelta = timedelta(seconds=30)
    execution_cutoff: timedelta | None = None
    polling_timeout: timedelta = timedelta(seconds=30)
    retry_base: timedelta = DEFAULT_BASE
    retry_cap: timedelta = DEFAULT_CAP
    worker_ttl: timedelta = timedelta(seconds=30)
    default_timezone: str = "UTC"  # for jobs created without a zone

    @property
    def lease_ms(self) -> int:
        return int(self.lease.total_seconds() * 1000)

    @property
    def heartbeat_interval(self) -> timedelta:
        return self.lease / 3


class SeqSource:
    """Strictly increasing FIFO numbers: wall-clock microseconds, bumped on ties, so
    servers sharing a broker interleave their submissions in roughly submit order."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        self._last = max(self._last + 1, time.time_ns() // 1000)
        return self._last


@dataclass
class Deps:
    broker: Broker
    repo: Repository
    feed: Feed
    registry: Registry
    settings: Settings
    clock: Callable[[], datetime] = utcnow
    seq: SeqSource | None = None
    # Called when a new deadline may be earlier than the reaper's timer (set by the app).
    timers_changed: Callable[[], None] = lambda: None
    # Pushes cancellations to workers' WatchCancellations streams (set by the app).
    cancels: CancelHub | None = None
    # Cron jobs (set by the app): their store, the fire lock, and a poke for the cron loop.
    jobs: JobRepository | None = None
    fire_lock: FireLock | None = None
    jobs_changed: Callable[[], None] = lambda: None
    # Callbacks owed by terminal moves go through the outbox to the delivery loop.
    callbacks: CallbackQueue | None = None
    # Told of every recorded move (metrics): the task before and after, and the kind.
    observe: Callable[[Task, Task, str], None] = lambda before, after, kind: None
    # Set when the server begins a graceful stop: long-polls and streams end early.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Finishes the tails of moves a backend failure cut short (its loop is run by the app).
    mender: Mender = field(default_factory=Mender)

    def next_seq(self) -> int:
        if self.seq is None:
            self.seq = SeqSource()
        return self.seq.next()


def live_entry(task: Task) -> LiveEntry:
    return LiveEntry(
        id=task.id,
        queue=task.queue,
        priority=task.priority,
        seq=task.seq,
        eta_ms=to_ms_not_before(task.eta),
        expires_ms=to_ms_not_before(task.expires_at) if task.expires_at else None,
        holds=task.holds,
        version=task.version,
    )


def ref(task: Task) -> TaskRef:
    return TaskRef(task.queue, task.id)


def event(
    task: Task, old: TaskState | None, kind: str, now: datetime, error: str = ""
) -> ActivityEvent:
    return ActivityEvent(
        task_id=task.id,
        name=task.name,
        queue=task.queue,
        old_state=old,
        new_state=task.state,
        kind=kind,
        time=now,
        worker_id=task.worker_id,
        attempt=task.attempts,
        error=error or task.error,
        job_id=task.job_id,
    )


def saving(deps: Deps, after: Task) -> Step:
    return Step(
        f"save as {after.state.value} v{after.version}", functools.partial(deps.repo.save, after)
    )


def announcing(deps: Deps, before: Task, after: Task, kind: str) -> Step:
    return Step(f"publish {kind}", functools.partial(_announce, deps, before, after, kind))


async def _announce(deps: Deps, before: Task, after: Task, kind: str) -> None:
    await deps.feed.publish([event(after, before.state, kind, after.updated_at)])
    deps.observe(before, after, kind)


def recording(deps: Deps, before: Task, after: Task, kind: str) -> list[Step]:
    """Persist a move the broker made, then announce it."""
    return [saving(deps, after), announcing(deps, before, after, kind)]


async def record(deps: Deps, before: Task, after: Task, kind: str) -> Task:
    """Record a move the broker made. Unavailable if a backend failed: the move is then
    recorded in the background (see services/mending)."""
    await deps.mender.carry(after.id, recording(deps, before, after, kind))
    return after
