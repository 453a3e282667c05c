"""Task <-> plain document, shared by the repository adapters.

Payload and result stay JSON text inside the document: MongoDB would reject keys with `.`
or a leading `$`, and no store may reorder keys or coerce big integers.
"""

from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

from giobba_server.domain.task import Hold, StartMode, Task, TaskState

_DATETIMES = ("eta", "created_at", "updated_at", "started_at", "completed_at", "expires_at")
_SPANS = ("timeout", "retry_backoff")


def to_doc(task: Task) -> dict[str, Any]:
    doc: dict[str, Any] = {f.name: getattr(task, f.name) for f in fields(Task)}
    doc["state"] = task.state.value
    doc["start_mode"] = task.start_mode.value
    doc["holds"] = sorted(h.value for h in task.holds)
    for name in _SPANS:
        span = doc[name]
        doc[name] = span.total_seconds() if span is not None else None
    return doc


def from_doc(doc: dict[str, Any], parse_time: Any = None) -> Task:
    values = {f.name: doc[f.name] for f in fields(Task) if f.name in doc}
    values["state"] = TaskState(doc["state"])
    values["start_mode"] = StartMode(doc.get("start_mode", "AUTO"))
    values["holds"] = frozenset(Hold(h) for h in doc.get("holds", ()))
    for name in _SPANS:
        if values.get(name) is not None:
            values[name] = timedelta(seconds=values[name])
    if parse_time is not None:
        for name in _DATETIMES:
            if values.get(name) is not None:
                values[name] = parse_time(values[name])
    return Task(**values)


def iso(moment: datetime) -> str:
    return moment.isoformat()
