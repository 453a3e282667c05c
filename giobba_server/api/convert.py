"""Protobuf <-> domain. The only place that knows both shapes."""

from datetime import UTC, datetime, timedelta

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from giobba_client._gen.giobba.v1 import task_pb2 as pb
from giobba_server.domain.errors import InvalidArgument
from giobba_server.domain.ports import ActivityEvent, WorkerStatus
from giobba_server.domain.spec import TaskSpec
from giobba_server.domain.task import StartMode, Task, TaskState

STATE_TO_PB = {
    TaskState.PENDING: pb.TASK_STATE_PENDING,
    TaskState.RUNNING: pb.TASK_STATE_RUNNING,
    TaskState.COMPLETED: pb.TASK_STATE_COMPLETED,
    TaskState.FAILED: pb.TASK_STATE_FAILED,
    TaskState.REVOKED: pb.TASK_STATE_REVOKED,
    TaskState.KILLED: pb.TASK_STATE_KILLED,
}
PB_TO_STATE: dict[int, TaskState] = {int(v): k for k, v in STATE_TO_PB.items()}
KIND_TO_PB = {
    "CREATED": pb.ACTIVITY_KIND_CREATED,
    "STARTED": pb.ACTIVITY_KIND_STARTED,
    "RETRIED": pb.ACTIVITY_KIND_RETRIED,
    "COMPLETED": pb.ACTIVITY_KIND_COMPLETED,
    "FAILED": pb.ACTIVITY_KIND_FAILED,
    "REVOKED": pb.ACTIVITY_KIND_REVOKED,
    "KILLED": pb.ACTIVITY_KIND_KILLED,
    "RELEASED": pb.ACTIVITY_KIND_RELEASED,
    "RECOVERED": pb.ACTIVITY_KIND_RECOVERED,
}
REASON_TO_PB = {
    "READY": pb.PENDING_REASON_READY,
    "ETA": pb.PENDING_REASON_ETA,
    "MANUAL": pb.PENDING_REASON_MANUAL,
    "PARENT": pb.PENDING_REASON_PARENT,
    "RETRY": pb.PENDING_REASON_RETRY,
}
CALLBACK_TO_PB = {
    "PENDING": pb.CALLBACK_STATUS_PENDING,
    "DELIVERED": pb.CALLBACK_STATUS_DELIVERED,
    "FAILED": pb.CALLBACK_STATUS_FAILED,
}
# Timestamp.seconds must stay within years 0001-9999 (the proto's documented range).
_MIN_SECONDS, _MAX_SECONDS = -62135596800, 253402300799


def ts(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    out = Timestamp()
    out.FromDatetime(moment.astimezone(UTC))
    return out


def from_ts(field: str, message: Timestamp) -> datetime:
    if not _MIN_SECONDS <= message.seconds <= _MAX_SECONDS or not 0 <= message.nanos < 10**9:
        raise InvalidArgument(field, "is outside the valid timestamp range")
    return message.ToDatetime(tzinfo=UTC)


def opt_ts(field: str, holder: object, name: str) -> datetime | None:
    if not holder.HasField(name):  # type: ignore[attr-defined]
        return None
    return from_ts(field, getattr(holder, name))


def dur(span: timedelta | None) -> Duration | None:
    if span is None:
        return None
    out = Duration()
    out.FromTimedelta(span)
    return out


def opt_dur(field: str, holder: object, name: str) -> timedelta | None:
    if not holder.HasField(name):  # type: ignore[attr-defined]
        return None
    message: Duration = getattr(holder, name)
    if message.seconds < 0 or message.nanos < 0 or message.seconds > 10 * 365 * 86400:
        raise InvalidArgument(field, "must be a positive duration under 10 years")
    return message.ToTimedelta()


def _start_mode(field: str, value: int) -> StartMode:
    if value == pb.START_MODE_MANUAL:
        return StartMode.MANUAL
    if value in (pb.START_MODE_AUTO, pb.START_MODE_UNSPECIFIED):
        return StartMode.AUTO
    raise InvalidArgument(field, f"{value} is not a start mode")


def spec_from_pb(message: pb.TaskSpec, prefix: str = "task.") -> TaskSpec:
    return TaskSpec(
        id=message.id,
        name=message.name,
        payload=message.payload,
        queue=message.queue,
        priority=message.priority,
        eta=opt_ts(f"{prefix}eta", message, "eta"),
        start_mode=_start_mode(f"{prefix}start_mode", message.start_mode),
        parent_id=message.parent_id,
        max_retries=message.max_retries,
        expires_at=opt_ts(f"{prefix}expires_at", message, "expires_at"),
        callback=message.callback,
        callback_err=message.callback_err,
        schedule=message.schedule,
        timezone=message.timezone,
        timeout=opt_dur(f"{prefix}timeout", message, "timeout"),
        retry_backoff=opt_dur(f"{prefix}retry_backoff", message, "retry_backoff"),
    )


def task_to_pb(task: Task, now: datetime) -> pb.Task:
    reason = task.pending_reason(now)
    return pb.Task(
        id=task.id,
        name=task.name,
        payload=task.payload,
        queue=task.queue,
        state=STATE_TO_PB[task.state],
        eta=ts(task.eta),
        priority=task.priority,
        start_mode=pb.START_MODE_MANUAL
        if task.start_mode is StartMode.MANUAL
        else pb.START_MODE_AUTO,
        parent_id=task.parent_id,
        schedule=task.schedule,
        is_schedule_active=task.is_schedule_active,
        job_id=task.job_id,
        error=task.error,
        created_at=ts(task.created_at),
        updated_at=ts(task.updated_at),
        started_at=ts(task.started_at),
        completed_at=ts(task.completed_at),
        expires_at=ts(task.expires_at),
        result=task.result,
        retries=task.retries,
        max_retries=task.max_retries,
        scheduler_id=task.scheduler_id,
        worker_id=task.worker_id,
        callback=task.callback,
        callback_err=task.callback_err,
        timeout=dur(task.timeout),
        retry_backoff=dur(task.retry_backoff),
        attempts=task.attempts,
        pending_reason=REASON_TO_PB[reason.value] if reason else pb.PENDING_REASON_UNSPECIFIED,
        callback_status=CALLBACK_TO_PB.get(task.callback_status, pb.CALLBACK_STATUS_UNSPECIFIED),
        callback_attempts=task.callback_attempts,
        callback_error=task.callback_error,
    )


def activity_to_pb(event: ActivityEvent) -> pb.Activity:
    return pb.Activity(
        cursor=event.cursor,
        time=ts(event.time),
        task_id=event.task_id,
        name=event.name,
        queue=event.queue,
        old_state=STATE_TO_PB[event.old_state] if event.old_state else pb.TASK_STATE_UNSPECIFIED,
        new_state=STATE_TO_PB[event.new_state],
        worker_id=event.worker_id,
        attempt=event.attempt,
        error=event.error,
        kind=KIND_TO_PB.get(event.kind, pb.ACTIVITY_KIND_UNSPECIFIED),
        job_id=event.job_id,
    )


def worker_from_pb(message: pb.WorkerInfo, now: datetime, kind: str = "WORKER") -> WorkerStatus:
    return WorkerStatus(
        id=message.id,
        host=message.host,
        pid=message.pid,
        queues=tuple(message.queues),
        concurrency=message.concurrency,
        running=tuple(message.running_task_ids),
        completed=message.completed,
        failed=message.failed,
        version=message.version,
        kind=kind,
        last_seen=now,  # the server's clock, never the worker's
        started_at=from_ts("worker.started_at", message.started_at)
        if message.HasField("started_at")
        else None,
    )


def worker_to_pb(status: WorkerStatus) -> pb.WorkerInfo:
    return pb.WorkerInfo(
        id=status.id,
        host=status.host,
        pid=status.pid,
        queues=list(status.queues),
        concurrency=status.concurrency,
        running_task_ids=list(status.running),
        completed=status.completed,
        failed=status.failed,
        version=status.version,
        kind=pb.WORKER_KIND_SERVER if status.kind == "SERVER" else pb.WORKER_KIND_WORKER,
        last_seen=ts(status.last_seen),
        started_at=ts(status.started_at),
    )
