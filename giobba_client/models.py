"""Plain typed values the SDK returns (never raw protobuf)."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class TaskState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    REVOKED = "REVOKED"
    KILLED = "KILLED"

    @property
    def terminal(self) -> bool:
        return self not in (TaskState.PENDING, TaskState.RUNNING)


@dataclass(frozen=True)
class Task:
    id: str
    name: str
    payload: dict[str, Any]
    queue: str
    state: TaskState
    priority: int
    eta: datetime | None
    start_mode: str
    parent_id: str
    schedule: str
    is_schedule_active: bool
    job_id: str
    error: str
    created_at: datetime | None
    updated_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    expires_at: datetime | None
    result: dict[str, Any] | None
    retries: int
    max_retries: int
    scheduler_id: str
    worker_id: str
    callback: str
    callback_err: str
    timeout: timedelta | None
    retry_backoff: timedelta | None
    attempts: int
    pending_reason: str
    # The HTTP callback owed by how the task ended: "" (none), PENDING, DELIVERED or
    # FAILED, with the POST attempts made and the last attempt's error.
    callback_status: str = ""
    callback_attempts: int = 0
    callback_error: str = ""

    def to_json(self) -> dict[str, Any]:
        """The seed's field names in snake_case, times as ISO-8601 UTC."""
        return {key: _jsonable(value) for key, value in self.__dict__.items()}


@dataclass(frozen=True)
class Activity:
    cursor: int
    time: datetime | None
    task_id: str
    name: str
    queue: str
    old_state: TaskState | None
    new_state: TaskState | None
    kind: str
    worker_id: str
    attempt: int
    error: str
    job_id: str


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    host: str
    pid: int
    kind: str
    queues: list[str]
    concurrency: int
    running_task_ids: list[str]
    completed: int
    failed: int
    version: str
    last_seen: datetime | None
    started_at: datetime | None


@dataclass(frozen=True)
class TaskPage:
    tasks: list[Task]
    next_page_token: str = ""


@dataclass(frozen=True)
class WaitResult:
    task: Task
    done: bool


@dataclass(frozen=True)
class RevokeResult:
    task: Task
    revoked_children: list[str] = field(default_factory=list)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, StrEnum):
        return value.value
    return value


@dataclass(frozen=True)
class Job:
    """A cron job. `task` is the run template (name, payload and options); `upcoming`
    holds the next fire times when asked for with `get_job(upcoming=N)`."""

    id: str
    schedule: str
    timezone: str
    task: dict[str, Any]
    starts_at: datetime | None
    expires_at: datetime | None
    missed_policy: str
    overlap_policy: str
    run_expiry: timedelta | None
    is_active: bool
    last_execution: datetime | None
    next_execution: datetime | None
    created_at: datetime | None
    updated_at: datetime | None
    last_task_id: str
    upcoming: list[datetime] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = {key: _jsonable(value) for key, value in self.__dict__.items()}
        data["upcoming"] = [_jsonable(t) for t in self.upcoming]
        return data


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    next_page_token: str = ""
