"""Ports: what the services need from the live-state broker and the durable repository.

The Broker is the authority on live transitions: each method is one atomic step (a Lua
script on Redis, a plain critical section in-process) that checks the current state or
lease token before moving, and returns the task's new `version`. The Repository is the
durable record; it applies a write only when its version is newer than what it holds, so
writes that race across servers can never move a task backwards.
"""

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from giobba_server.domain.task import Hold, Task, TaskState


@dataclass(frozen=True)
class TaskRef:
    queue: str
    id: str


@dataclass(frozen=True)
class LiveEntry:
    """A non-terminal task as the broker keeps it."""

    id: str
    queue: str
    priority: int
    seq: int
    eta_ms: int
    expires_ms: int | None = None
    holds: frozenset[Hold] = frozenset()
    version: int = 0
    # Set for a task restored as RUNNING after a restart: its lease carries on.
    running_token: str = ""
    worker_id: str = ""

    @property
    def ref(self) -> TaskRef:
        return TaskRef(self.queue, self.id)


@dataclass(frozen=True)
class Claim:
    id: str
    queue: str
    token: str
    lease_deadline_ms: int
    version: int


@dataclass(frozen=True)
class ClaimBatch:
    claims: list[Claim]
    # Due tasks found past their expiry: not handed out; the service revokes them.
    expired: list[TaskRef] = field(default_factory=list)


class CancelReason(StrEnum):
    KILLED = "KILLED"
    TIMEOUT = "TIMEOUT"
    LEASE_LOST = "LEASE_LOST"


@dataclass(frozen=True)
class Renewal:
    renewed: list[str]
    cancelled: list[tuple[str, CancelReason]]


@dataclass(frozen=True)
class Moved:
    """A transition the broker made; `worker_id` is the lease holder it ended, if any."""

    version: int
    worker_id: str = ""


class RevokeOutcome(StrEnum):
    REVOKED = "REVOKED"
    NOT_PENDING = "NOT_PENDING"  # running, or unknown to the broker (terminal)


@dataclass(frozen=True)
class Revoked:
    outcome: RevokeOutcome
    version: int = 0


@dataclass(frozen=True)
class ExpiredLease:
    ref: TaskRef
    token: str
    worker_id: str


class Broker(Protocol):
    async def add(self, entries: Sequence[LiveEntry]) -> None:
        """Make tasks live: ready, delayed until their ETA, or held."""

    async def restore(self, entries: Sequence[LiveEntry]) -> int:
        """Recovery: add the entries the broker does not know; returns how many."""

    async def contains(self, refs: Sequence[TaskRef]) -> list[bool]: ...

    async def claim(
        self, queues: Sequence[str], worker_id: str, limit: int, lease_ms: int
    ) -> ClaimBatch:
        """Take up to `limit` due tasks, highest priority first across `queues`."""

    async def wait_for_work(self, queues: Sequence[str], timeout: float) -> None:
        """Return when a claim on `queues` may succeed (new work or an ETA came due), or
        after `timeout` seconds. Spurious wake-ups are allowed."""

    async def renew(
        self, worker_id: str, leases: Sequence[tuple[TaskRef, str]], lease_ms: int
    ) -> Renewal:
        """Extend the worker's valid leases; report cancellations owed to it."""

    async def finish(self, ref: TaskRef, token: str) -> Moved | None:
        """RUNNING -> terminal with this token; None if the token is stale."""

    async def retry(self, ref: TaskRef, token: str, eta_ms: int) -> Moved | None:
        """RUNNING -> PENDING, due at `eta_ms`; None if the token is stale."""

    async def release(self, ref: TaskRef, token: str) -> Moved | None:
        """RUNNING -> PENDING, due now, keeping its place in line."""

    async def revoke(self, ref: TaskRef) -> Revoked:
        """PENDING -> gone; a running or unknown task is left alone."""

    async def unhold(self, ref: TaskRef, hold: Hold) -> Moved | None:
        """Drop a hold; a task with no holds left becomes due at its ETA. None if the task
        is not pending or does not have the hold."""

    async def kill(self, ref: TaskRef) -> Moved | None:
        """RUNNING -> gone; the lease is fenced and the worker is told to cancel."""

    async def expired_leases(self, limit: int) -> list[ExpiredLease]:
        """Leases past their deadline on the broker's clock (not removed)."""

    async def due_expiries(self, limit: int) -> list[TaskRef]:
        """PENDING tasks past their expires_at."""

    async def next_deadline_ms(self) -> int | None:
        """Earliest lease deadline or task expiry, for the reaper's timer."""

    async def epoch(self) -> str:
        """Names the broker's live state; it changes when that state was lost (Redis
        flushed, or restarted without persistence), telling servers to reconcile."""


@dataclass(frozen=True)
class TaskFilter:
    states: frozenset[TaskState] = frozenset()
    queue: str = ""
    name: str = ""
    parent_id: str = ""
    job_id: str = ""


@dataclass(frozen=True)
class Page:
    tasks: list[Task]
    next_token: str


def page_token(last: Task) -> str:
    """The token of the page that follows `last` (tasks are listed newest first, by
    (seq, id) descending): the same on every repository."""
    return f"{last.seq}:{last.id}"


def parse_page_token(token: str) -> tuple[int, str] | None:
    """(seq, id) of a token from `page_token`, or None if it is not one."""
    seq, sep, last = token.partition(":")
    # ASCII digits only ("²".isdigit() is True) and within a signed 64-bit integer.
    if not (sep and last and seq.isascii() and seq.isdigit() and len(seq) <= 18):
        return None
    return int(seq), last


class Repository(Protocol):
    async def insert(self, tasks: Sequence[Task]) -> None:
        """All or nothing; AlreadyExists if any id exists."""

    async def delete(self, task_ids: Sequence[str]) -> None:
        """Undo an insert whose broker step failed (submit is all or nothing)."""

    async def get(self, task_id: str) -> Task | None: ...

    async def get_many(self, task_ids: Sequence[str]) -> dict[str, Task]: ...

    async def save(self, task: Task) -> bool:
        """Write the task if its version is newer than the stored one; False otherwise."""

    async def query(self, flt: TaskFilter, limit: int, token: str) -> Page:
        """Newest first (by seq), `token` from a previous page."""

    async def children(self, parent_id: str) -> list[Task]: ...

    async def live(self, after_id: str, limit: int) -> list[Task]:
        """PENDING and RUNNING tasks ordered by id, for recovery."""

    async def record_callback(self, task_id: str, status: str, attempts: int, error: str) -> None:
        """Set the task's callback_status/attempts/error and nothing else: no version
        bump, no state change (a terminal task is never moved again)."""

    async def close(self) -> None: ...


@dataclass(frozen=True)
class ActivityEvent:
    task_id: str
    name: str
    queue: str
    old_state: TaskState | None
    new_state: TaskState
    kind: str
    time: datetime
    worker_id: str = ""
    attempt: int = 0
    error: str = ""
    job_id: str = ""
    cursor: int = 0


class Feed(Protocol):
    """The activity feed: strictly increasing cursors, replay then live."""

    async def publish(self, events: Sequence[ActivityEvent]) -> None: ...

    async def head(self) -> int:
        """The newest cursor (0 when empty)."""

    def watch(self, from_cursor: int | None) -> AsyncGenerator[ActivityEvent, None]:
        """Events with cursor > from_cursor (None: only new ones), then live."""
        ...


@dataclass(frozen=True)
class WorkerStatus:
    """A worker's or server's last heartbeat, stamped with the receiving server's clock."""

    id: str
    host: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    running: tuple[str, ...]
    completed: int
    failed: int
    version: str
    kind: str  # "WORKER" or "SERVER"
    last_seen: datetime
    started_at: datetime | None = None


class Registry(Protocol):
    """Live workers and servers, each kept until its heartbeat goes stale."""

    async def beat(self, status: WorkerStatus, ttl_ms: int) -> None: ...

    async def alive(self) -> list[WorkerStatus]: ...

    async def last_seen(self, worker_id: str) -> datetime | None:
        """When the worker's latest beat arrived (the receiving server's clock); None when
        it is not listed: never heard of, or its beat went stale. One cheap read."""
        ...

    def watch(self) -> AsyncGenerator[WorkerStatus, None]: ...
