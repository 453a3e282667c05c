"""Requests from Python values, and plain values from protobuf replies."""

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from giobba_client._gen.giobba.v1 import job_service_pb2 as js
from giobba_client._gen.giobba.v1 import task_pb2 as pb
from giobba_client.errors import InvalidArgument
from giobba_client.models import Activity, Job, Task, TaskState, WorkerInfo

STATES = {
    pb.TASK_STATE_PENDING: TaskState.PENDING,
    pb.TASK_STATE_RUNNING: TaskState.RUNNING,
    pb.TASK_STATE_COMPLETED: TaskState.COMPLETED,
    pb.TASK_STATE_FAILED: TaskState.FAILED,
    pb.TASK_STATE_REVOKED: TaskState.REVOKED,
    pb.TASK_STATE_KILLED: TaskState.KILLED,
}
STATE_NUMBERS = {v: k for k, v in STATES.items()}

When = datetime | timedelta | None


def dump_json(value: Any, field: str) -> str:
    """JSON object text; refuses what JSON cannot carry (NaN, Infinity, non-str keys)."""
    if value is None:
        return ""
    if not isinstance(value, dict):
        raise InvalidArgument(
            f"{field}: must be a dict (a JSON object), got {type(value).__name__}"
        )
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        text.encode("utf-8")  # a lone surrogate has no UTF-8 form
    except UnicodeEncodeError:
        reason = "holds a lone UTF-16 surrogate, which is not text"
        raise InvalidArgument(f"{field}: {reason}") from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidArgument(f"{field}: cannot be encoded as JSON ({exc})") from None
    return text


def load_json(text: str) -> dict[str, Any]:
    return json.loads(text) if text else {}


def when(value: When, field: str) -> Timestamp | None:
    if value is None:
        return None
    try:
        if isinstance(value, timedelta):
            value = datetime.now(UTC) + value
        if value.tzinfo is None:
            raise InvalidArgument(f"{field}: must be timezone-aware (e.g. datetime.now(UTC))")
        out = Timestamp()
        out.FromDatetime(value.astimezone(UTC))
    except (OverflowError, ValueError) as exc:
        raise InvalidArgument(f"{field}: out of range ({exc})") from None
    return out


INT32 = (-(2**31), 2**31 - 1)


def int32(value: object, field: str) -> int:
    """An int the wire's int32 field can carry; the server judges the range it allows.
    Protobuf's own errors (a bare TypeError for True, ValueError past 2^31) name nothing."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{field}: must be an integer, got {type(value).__name__}")
    if not INT32[0] <= value <= INT32[1]:
        raise InvalidArgument(f"{field}: {value} is out of range")
    return value


def span(value: timedelta | float | None, field: str, zero_ok: bool = False) -> Duration | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not zero_ok):
        kind = "a duration of zero or more" if zero_ok else "a positive duration"
        raise InvalidArgument(f"{field}: must be {kind}")
    out = Duration()
    try:
        out.FromTimedelta(timedelta(seconds=seconds))
    except (OverflowError, ValueError) as exc:
        raise InvalidArgument(f"{field}: out of range ({exc})") from None
    return out


def spec(
    name: str,
    payload: dict[str, Any] | None = None,
    *,
    queue: str = "",
    priority: int = 0,
    eta: When = None,
    manual: bool = False,
    parent_id: str = "",
    max_retries: int = 0,
    expires_at: When = None,
    callback: str = "",
    callback_err: str = "",
    timeout: timedelta | float | None = None,
    retry_backoff: timedelta | float | None = None,
    task_id: str = "",
    schedule: str = "",
    timezone: str = "",
) -> pb.TaskSpec:
    return pb.TaskSpec(
        id=task_id,
        name=name,
        payload=dump_json(payload, "payload"),
        queue=queue,
        priority=int32(priority, "priority"),
        eta=when(eta, "eta"),
        start_mode=pb.START_MODE_MANUAL if manual else pb.START_MODE_AUTO,
        parent_id=parent_id,
        max_retries=int32(max_retries, "max_retries"),
        expires_at=when(expires_at, "expires_at"),
        callback=callback,
        callback_err=callback_err,
        timeout=span(timeout, "timeout"),
        retry_backoff=span(retry_backoff, "retry_backoff"),
        schedule=schedule,
        timezone=timezone,
    )


def opt_time(holder: Any, name: str) -> datetime | None:
    if not holder.HasField(name):
        return None
    stamp: Timestamp = getattr(holder, name)
    return stamp.ToDatetime(tzinfo=UTC)


def opt_span(holder: Any, name: str) -> timedelta | None:
    if not holder.HasField(name):
        return None
    value: Duration = getattr(holder, name)
    return value.ToTimedelta()


def task(message: pb.Task) -> Task:
    return Task(
        id=message.id,
        name=message.name,
        payload=load_json(message.payload),
        queue=message.queue,
        state=STATES[message.state],
        priority=message.priority,
        eta=opt_time(message, "eta"),
        start_mode="MANUAL" if message.start_mode == pb.START_MODE_MANUAL else "AUTO",
        parent_id=message.parent_id,
        schedule=message.schedule,
        is_schedule_active=message.is_schedule_active,
        job_id=message.job_id,
        error=message.error,
        created_at=opt_time(message, "created_at"),
        updated_at=opt_time(message, "updated_at"),
        started_at=opt_time(message, "started_at"),
        completed_at=opt_time(message, "completed_at"),
        expires_at=opt_time(message, "expires_at"),
        result=load_json(message.result) if message.result else None,
        retries=message.retries,
        max_retries=message.max_retries,
        scheduler_id=message.scheduler_id,
        worker_id=message.worker_id,
        callback=message.callback,
        callback_err=message.callback_err,
        timeout=opt_span(message, "timeout"),
        retry_backoff=opt_span(message, "retry_backoff"),
        attempts=message.attempts,
        pending_reason=pb.PendingReason.Name(message.pending_reason).removeprefix("PENDING_REASON_")
        if message.pending_reason
        else "",
        callback_status=pb.CallbackStatus.Name(message.callback_status).removeprefix(
            "CALLBACK_STATUS_"
        )
        if message.callback_status
        else "",
        callback_attempts=message.callback_attempts,
        callback_error=message.callback_error,
    )


def activity(message: pb.Activity) -> Activity:
    return Activity(
        cursor=message.cursor,
        time=opt_time(message, "time"),
        task_id=message.task_id,
        name=message.name,
        queue=message.queue,
        old_state=STATES.get(message.old_state),
        new_state=STATES.get(message.new_state),
        kind=pb.ActivityKind.Name(message.kind).removeprefix("ACTIVITY_KIND_"),
        worker_id=message.worker_id,
        attempt=message.attempt,
        error=message.error,
        job_id=message.job_id,
    )


def worker(message: pb.WorkerInfo) -> WorkerInfo:
    return WorkerInfo(
        id=message.id,
        host=message.host,
        pid=message.pid,
        kind="SERVER" if message.kind == pb.WORKER_KIND_SERVER else "WORKER",
        queues=list(message.queues),
        concurrency=message.concurrency,
        running_task_ids=list(message.running_task_ids),
        completed=message.completed,
        failed=message.failed,
        version=message.version,
        last_seen=opt_time(message, "last_seen"),
        started_at=opt_time(message, "started_at"),
    )


def now() -> datetime:
    return datetime.now(UTC)


MISSED_POLICIES = ("COALESCE", "SKIP", "RUN_ALL")
OVERLAP_POLICIES = ("ALLOW", "SKIP")


def _policy(value: str, choices: tuple[str, ...], field: str) -> str:
    name = value.strip().upper().replace("-", "_")
    if name not in choices:
        raise InvalidArgument(f"{field}: must be one of {', '.join(choices)}, got {value!r}")
    return name


def job_spec(
    schedule: str,
    name: str,
    payload: dict[str, Any] | None = None,
    *,
    timezone: str = "",
    job_id: str = "",
    starts_at: When = None,
    expires_at: When = None,
    missed_policy: str = "COALESCE",
    overlap_policy: str = "ALLOW",
    run_expiry: timedelta | float | None = None,
    **task_options: Any,
) -> js.JobSpec:
    """A JobSpec; `task_options` are `spec`'s (queue, priority, max_retries, ...)."""
    missed = _policy(missed_policy, MISSED_POLICIES, "missed_policy")
    overlap = _policy(overlap_policy, OVERLAP_POLICIES, "overlap_policy")
    return js.JobSpec(
        id=job_id,
        schedule=schedule,
        timezone=timezone,
        task=spec(name, payload, **task_options),
        starts_at=when(starts_at, "starts_at"),
        expires_at=when(expires_at, "expires_at"),
        missed_policy=f"MISSED_POLICY_{missed}",
        overlap_policy=f"OVERLAP_POLICY_{overlap}",
        run_expiry=span(run_expiry, "run_expiry"),
    )


def _template(message: pb.TaskSpec) -> dict[str, Any]:
    return {
        "name": message.name,
        "payload": load_json(message.payload),
        "queue": message.queue,
        "priority": message.priority,
        "start_mode": "MANUAL" if message.start_mode == pb.START_MODE_MANUAL else "AUTO",
        "max_retries": message.max_retries,
        "callback": message.callback,
        "callback_err": message.callback_err,
        # Seconds, so the template stays plain JSON data.
        "timeout": message.timeout.ToTimedelta().total_seconds()
        if message.HasField("timeout")
        else None,
        "retry_backoff": message.retry_backoff.ToTimedelta().total_seconds()
        if message.HasField("retry_backoff")
        else None,
    }


def job(message: js.Job, upcoming: list[Timestamp] | None = None) -> Job:
    return Job(
        id=message.id,
        schedule=message.schedule,
        timezone=message.timezone,
        task=_template(message.task),
        starts_at=opt_time(message, "starts_at"),
        expires_at=opt_time(message, "expires_at"),
        missed_policy=js.MissedPolicy.Name(message.missed_policy).removeprefix("MISSED_POLICY_"),
        overlap_policy=js.OverlapPolicy.Name(message.overlap_policy).removeprefix(
            "OVERLAP_POLICY_"
        ),
        run_expiry=opt_span(message, "run_expiry"),
        is_active=message.is_active,
        last_execution=opt_time(message, "last_execution"),
        next_execution=opt_time(message, "next_execution"),
        created_at=opt_time(message, "created_at"),
        updated_at=opt_time(message, "updated_at"),
        last_task_id=message.last_task_id,
        upcoming=[t.ToDatetime(tzinfo=UTC) for t in upcoming or []],
    )
