"""Task <-> plain document, shared by the repository adapters.

Payload and result stay JSON text inside the document: MongoDB would reject keys with `.`
or a leading `$`, and no store may reorder keys or coerce big integers.
"""

from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

from giobba_server.domain.errors import InvalidArgument
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


# MongoDB refuses a document over 16 MiB. Every adapter refuses the same tasks, so the
# limit lives here, measured on what dominates a document's size: its text fields.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
_FIXED_OVERHEAD = 2048  # field names, numbers and dates: well under this
_BIG_FIELDS = ("payload", "result", "error")


def text_size(task: Task) -> int:
    """Bytes a task's document needs, near enough: UTF-8 text plus a fixed overhead."""
    total = _FIXED_OVERHEAD
    for f in fields(Task):
        value = getattr(task, f.name)
        if isinstance(value, str):
            total += len(value.encode("utf-8", errors="surrogatepass"))
    return total


def refuse_oversized(task: Task, size: int | None = None) -> None:
    """InvalidArgument naming the limit and the biggest field, before anything is written."""
    size = text_size(task) if size is None else size
    if size <= MAX_DOCUMENT_BYTES:
        return
    biggest = max(_BIG_FIELDS, key=lambda name: len(getattr(task, name)))
    raise InvalidArgument(
        biggest,
        f"task {task.id} would be stored as a {size} byte document, over the"
        f" {MAX_DOCUMENT_BYTES} byte (16 MiB) document limit",
    )
