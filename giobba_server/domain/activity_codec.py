"""An activity event as a JSON object: how every feed stores it (and Redis announces it)."""

from datetime import datetime
from typing import Any

from giobba_server.domain.ports import ActivityEvent
from giobba_server.domain.task import TaskState


def event_fields(event: ActivityEvent) -> dict[str, Any]:
    """Everything but the cursor, which each feed assigns and keeps on its own."""
    return {
        "task_id": event.task_id,
        "name": event.name,
        "queue": event.queue,
        "old_state": event.old_state.value if event.old_state else None,
        "new_state": event.new_state.value,
        "kind": event.kind,
        "worker_id": event.worker_id,
        "attempt": event.attempt,
        "error": event.error,
        "job_id": event.job_id,
        "time": event.time.isoformat(),
    }


def event_from_fields(data: dict[str, Any], cursor: int) -> ActivityEvent:
    return ActivityEvent(
        task_id=data["task_id"],
        name=data["name"],
        queue=data["queue"],
        old_state=TaskState(data["old_state"]) if data["old_state"] else None,
        new_state=TaskState(data["new_state"]),
        kind=data["kind"],
        time=datetime.fromisoformat(data["time"]),
        worker_id=data["worker_id"],
        attempt=data["attempt"],
        error=data["error"],
        job_id=data["job_id"],
        cursor=cursor,
    )
