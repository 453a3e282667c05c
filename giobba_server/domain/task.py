"""Task: the durable record of one unit of work, and its state machine."""

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from giobba_server.domain.errors import FailedPrecondition


class TaskState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    REVOKED = "REVOKED"
    KILLED = "KILLED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({TaskState.COMPLETED, TaskState.FAILED, TaskState.REVOKED, TaskState.KILLED})

LEGAL_MOVES: dict[TaskState, frozenset[TaskState]] = {
    TaskState.PENDING: frozenset({TaskState.RUNNING, TaskState.REVOKED}),
    TaskState.RUNNING: frozenset(
        {TaskState.COMPLETED, TaskState.FAILED, TaskState.KILLED, TaskState.PENDING}
    ),
}


def check_move(old: TaskState, new: TaskState) -> None:
    if new not in LEGAL_MOVES.get(old, frozenset()):
        raise FailedPrecondition(f"task is {old}, cannot move to {new}")


class StartMode(StrEnum):
    AUTO = "AUTO"
    MANUAL = "MANUAL"


class PendingReason(StrEnum):
    READY = "READY"
    ETA = "ETA"
    MANUAL = "MANUAL"
    PARENT = "PARENT"
    RETRY = "RETRY"


class Hold(StrEnum):
    """What keeps a PENDING task off the ready queue besides its ETA."""

    MANUAL = "manual"
    PARENT = "parent"


@dataclass(frozen=True)
class Task:
    id: str
    name: str
    payload: str  # JSON object text, stored as the client sent it
    queue: str
    state: TaskState
    priority: int
    eta: datetime
    created_at: datetime
    updated_at: datetime
    seq: int  # FIFO order within a priority: microseconds at submit, unique per process
    start_mode: StartMode = StartMode.AUTO
    parent_id: str = ""
    schedule: str = ""
    is_schedule_active: bool = False
    job_id: str = ""
    error: str = ""
    started_at: datetime | None = None
    completed_at: datetime | None = None
    expires_at: datetime | None = None
    result: str = ""
    retries: int = 0
    max_retries: int = 0
    attempts: int = 0
    scheduler_id: str = ""
    worker_id: str = ""
    callback: str = ""
    callback_err: str = ""
    # The callback owed by how the task ended: "" (none), PENDING, DELIVERED or FAILED,
    # with the attempts made and the last error. Written by the delivery loop alone.
    callback_status: str = ""
    callback_attempts: int = 0
    callback_error: str = ""
    timeout: timedelta | None = None
    retry_backoff: timedelta | None = None
    lease_token: str = ""
    version: int = 0  # bumped on every move; the repository never goes backwards
    holds: frozenset[Hold] = field(default_factory=frozenset)

    def evolve(self, **changes: object) -> "Task":
        return replace(self, **changes)  # type: ignore[arg-type]

    def pending_reason(self, now: datetime) -> PendingReason | None:
        """Why a PENDING task is not running; derived, so it is never stale."""
        if self.state is not TaskState.PENDING:
            return None
        if Hold.PARENT in self.holds:
            return PendingReason.PARENT
        if Hold.MANUAL in self.holds:
            return PendingReason.MANUAL
        if self.eta > now:
            return PendingReason.RETRY if self.retries else PendingReason.ETA
        return PendingReason.READY
