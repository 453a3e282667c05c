"""HTTP callbacks: what is POSTed when a task ends, and the outbox entry that carries it.

On COMPLETED the task's `callback` is POSTed; on FAILED or KILLED its `callback_err`.
The body is built once, when the task ends, and stored with the entry, so every attempt
(on any server, before or after a restart) sends the same bytes under the same delivery
id, and a signature over them verifies however late it arrives.
"""

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from giobba_server.domain.retry import backoff
from giobba_server.domain.task import Task, TaskState

DELIVERY_HEADER = "Giobba-Delivery-Id"
SIGNATURE_HEADER = "Giobba-Signature"
ATTEMPT_HEADER = "Giobba-Attempt"
EVENT_HEADER = "Giobba-Event"
_NAMESPACE = uuid.UUID("0b7d6c3e-3f0b-4f0e-9c2a-6a1b3c5d7e9f")
MAX_ERROR = 500


class CallbackStatus(StrEnum):
    NONE = ""  # no callback for this end
    PENDING = "PENDING"  # queued or between retries
    DELIVERED = "DELIVERED"  # a 2xx answer
    FAILED = "FAILED"  # given up: a 4xx other than 429, or out of attempts


@dataclass(frozen=True)
class OutboxEntry:
    id: str  # the delivery id, stable across attempts, servers and restarts
    task_id: str
    url: str
    event: str  # the terminal state that caused it
    body: str  # JSON text, sent as is
    created_ms: int
    due_ms: int
    attempts: int = 0  # attempts made so far
    last_error: str = ""


def callback_url(task: Task) -> str:
    if task.state is TaskState.COMPLETED:
        return task.callback
    if task.state in (TaskState.FAILED, TaskState.KILLED):
        return task.callback_err
    return ""


def delivery_id(task: Task) -> str:
    """Deterministic for one terminal move: the same task ending the same way at the
    same version always yields the same id, so writing the entry twice is harmless."""
    return str(uuid.uuid5(_NAMESPACE, f"{task.id}/{task.state.value}/{task.version}"))


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def body(task: Task, delivery: str) -> str:
    data: dict[str, Any] = {
        "delivery_id": delivery,
        "id": task.id,
        "name": task.name,
        "queue": task.queue,
        "state": task.state.value,
    }
    if task.state is TaskState.COMPLETED:
        data["result"] = json.loads(task.result or "{}")
    else:
        data["error"] = task.error
    data.update(
        retries=task.retries,
        max_retries=task.max_retries,
        attempts=task.attempts,
        worker_id=task.worker_id,
        job_id=task.job_id,
        created_at=_iso(task.created_at),
        started_at=_iso(task.started_at),
        completed_at=_iso(task.completed_at),
    )
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def entry_for(task: Task, now_ms: int) -> OutboxEntry | None:
    """The outbox entry a terminal task owes, if it has a URL for how it ended."""
    url = callback_url(task)
    if not url:
        return None
    delivery = delivery_id(task)
    return OutboxEntry(
        id=delivery,
        task_id=task.id,
        url=url,
        event=task.state.value,
        body=body(task, delivery),
        created_ms=now_ms,
        due_ms=now_ms,
    )


def signature(secret: str, payload: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 of the exact body bytes with the configured secret."""
    digest = hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, payload: bytes, header: str) -> bool:
    return hmac.compare_digest(signature(secret, payload), header)


def retryable(status: int | None) -> bool:
    """None is a network error or timeout. 5xx and 429 are retried; other 4xx are not
    (the receiver said the request itself is wrong, and will say so again)."""
    return status is None or status >= 500 or status == 429


def delivered(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


def next_delay(
    attempts: int, base: timedelta, cap: timedelta, retry_after: float | None = None
) -> timedelta:
    """Exponential backoff with jitter after `attempts` failed attempts; a receiver's
    Retry-After (seconds) is honoured when longer, up to the cap."""
    delay = backoff(attempts, base, cap)
    if retry_after is not None:
        delay = max(delay, min(timedelta(seconds=retry_after), cap))
    return delay


def short_error(text: str) -> str:
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 3] + "..."
