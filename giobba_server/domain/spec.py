"""TaskSpec: what a producer submits, and its validation into a new Task."""

import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from giobba_server.domain.errors import InvalidArgument
from giobba_server.domain.payload import MAX_PAYLOAD_BYTES, parse_object
from giobba_server.domain.task import Hold, StartMode, Task, TaskState

QUEUE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
MAX_NAME = 200
MAX_RETRIES = 100
MAX_URL = 2048
MAX_REASON = 1024
MIN_PRIORITY, MAX_PRIORITY = 0, 10
DEFAULT_QUEUE = "default"


@dataclass(frozen=True)
class TaskSpec:
    name: str
    payload: str = ""
    id: str = ""
    queue: str = ""
    priority: int = 0
    eta: datetime | None = None
    start_mode: StartMode = StartMode.AUTO
    parent_id: str = ""
    max_retries: int = 0
    expires_at: datetime | None = None
    callback: str = ""
    callback_err: str = ""
    schedule: str = ""
    timezone: str = ""
    timeout: timedelta | None = None
    retry_backoff: timedelta | None = None


def check_url(field: str, url: str) -> None:
    if not url:
        return
    if len(url) > MAX_URL:
        raise InvalidArgument(field, f"is longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a malformed port
    except ValueError as exc:
        raise InvalidArgument(field, f"is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidArgument(field, f"must be an http or https URL, got {url!r}")
    if not parts.hostname or any(c.isspace() for c in url):
        raise InvalidArgument(field, f"is not a valid URL: {url!r}")
    del port


def check_reason(reason: str) -> str:
    """A revoke/kill reason becomes the task's error and travels in every event and
    callback about it, so it is bounded like the other short texts."""
    if len(reason) > MAX_REASON:
        raise InvalidArgument("reason", f"is longer than {MAX_REASON} characters")
    return reason


def check_id(field: str, value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidArgument(field, f"must be a UUID, got {value!r}") from None


def check_queue(field: str, queue: str) -> str:
    queue = queue or DEFAULT_QUEUE
    if not QUEUE_RE.match(queue):
        raise InvalidArgument(
            field, f"{queue!r} must be 1-100 letters, digits, '-', '_', '.' or ':'"
        )
    return queue


def check_worker_id(field: str, worker_id: str) -> str:
    """A worker id is logged, listed and used as a key: one printable line, bounded."""
    if not worker_id:
        raise InvalidArgument(field, "must not be empty")
    if len(worker_id) > MAX_NAME:
        raise InvalidArgument(field, f"is longer than {MAX_NAME} characters")
    if any(unicodedata.category(c) == "Cc" for c in worker_id):  # would forge log lines
        raise InvalidArgument(field, "must not contain control characters")
    return worker_id


def _check_scalars(spec: TaskSpec, prefix: str) -> None:
    name = spec.name.strip()
    if not name:
        raise InvalidArgument(f"{prefix}name", "must not be empty")
    if len(name) > MAX_NAME:
        raise InvalidArgument(f"{prefix}name", f"is longer than {MAX_NAME} characters")
    if any(unicodedata.category(c) == "Cc" for c in name):  # would forge log lines
        raise InvalidArgument(f"{prefix}name", "must not contain control characters")
    if not MIN_PRIORITY <= spec.priority <= MAX_PRIORITY:
        raise InvalidArgument(
            f"{prefix}priority", f"{spec.priority} is out of range {MIN_PRIORITY}-{MAX_PRIORITY}"
        )
    if not 0 <= spec.max_retries <= MAX_RETRIES:
        raise InvalidArgument(
            f"{prefix}max_retries", f"{spec.max_retries} is out of range 0-{MAX_RETRIES}"
        )
    for field, span in (("timeout", spec.timeout), ("retry_backoff", spec.retry_backoff)):
        if span is not None and span <= timedelta(0):
            raise InvalidArgument(f"{prefix}{field}", "must be positive")
    check_url(f"{prefix}callback", spec.callback)
    check_url(f"{prefix}callback_err", spec.callback_err)
    if spec.timezone and not spec.schedule:
        raise InvalidArgument(f"{prefix}timezone", "applies only with a schedule")


def build_task(
    spec: TaskSpec,
    *,
    now: datetime,
    seq: int,
    scheduler_id: str,
    prefix: str = "",
    max_payload: int = MAX_PAYLOAD_BYTES,
) -> Task:
    """Validate a spec and make its PENDING task. Parent existence is the service's job."""
    _check_scalars(spec, prefix)
    parse_object(spec.payload, f"{prefix}payload", max_payload)
    eta = spec.eta or now
    if spec.expires_at is not None and spec.expires_at <= now:
        raise InvalidArgument(f"{prefix}expires_at", "is already in the past")
    if spec.expires_at is not None and spec.expires_at <= eta:
        raise InvalidArgument(f"{prefix}expires_at", "is not after eta: the task could never run")
    holds = {Hold.MANUAL} if spec.start_mode is StartMode.MANUAL else set()
    if spec.parent_id:
        holds.add(Hold.PARENT)
    return Task(
        id=check_id(f"{prefix}id", spec.id) if spec.id else str(uuid.uuid4()),
        name=spec.name.strip(),
        payload=spec.payload or "{}",
        queue=check_queue(f"{prefix}queue", spec.queue),
        state=TaskState.PENDING,
        priority=spec.priority,
        eta=eta,
        created_at=now,
        updated_at=now,
        seq=seq,
        start_mode=spec.start_mode,
        parent_id=check_id(f"{prefix}parent_id", spec.parent_id) if spec.parent_id else "",
        max_retries=spec.max_retries,
        expires_at=spec.expires_at,
        callback=spec.callback,
        callback_err=spec.callback_err,
        timeout=spec.timeout,
        retry_backoff=spec.retry_backoff,
        scheduler_id=scheduler_id,
        holds=frozenset(holds),
    )
