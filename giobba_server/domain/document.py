"""How big a task's stored document gets, and the limit every store holds it to.

MongoDB refuses a document over 16 MiB. Every adapter refuses the same tasks, so the limit
lives here, measured on what dominates a document's size: its text fields. The services
check it too, before a move touches the broker: a write refused after the broker's step
would leave the move half-done.
"""

from dataclasses import fields

from giobba_server.domain.errors import InvalidArgument
from giobba_server.domain.task import Task

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
_FIXED_OVERHEAD = 2048  # field names, numbers and dates: well under this
_BIG_FIELDS = ("payload", "result", "error")
_LIMIT = f"the {MAX_DOCUMENT_BYTES} byte (16 MiB) document limit"


def _utf8(text: str) -> int:
    return len(text.encode("utf-8", errors="surrogatepass"))


def text_size(task: Task) -> int:
    """Bytes a task's document needs, near enough: UTF-8 text plus a fixed overhead."""
    total = _FIXED_OVERHEAD
    for f in fields(Task):
        value = getattr(task, f.name)
        if isinstance(value, str):
            total += _utf8(value)
    return total


def refuse_oversized(task: Task, size: int | None = None) -> None:
    """InvalidArgument naming the limit and the biggest field, before anything is written."""
    size = text_size(task) if size is None else size
    if size <= MAX_DOCUMENT_BYTES:
        return
    biggest = max(_BIG_FIELDS, key=lambda name: len(getattr(task, name)))
    raise InvalidArgument(
        biggest, f"task {task.id} would be stored as a {size} byte document, over {_LIMIT}"
    )


def refuse_oversized_result(task: Task, result: str) -> None:
    """InvalidArgument naming `result` when the completed task would not fit a document
    (the payload stays in it too)."""
    done = task.evolve(result=result, error="", lease_token="")
    size = text_size(done)
    if size <= MAX_DOCUMENT_BYTES:
        return
    raise InvalidArgument(
        "result",
        f"is {_utf8(result)} bytes; with the task's {_utf8(task.payload)} byte payload it"
        f" would be stored as a {size} byte document, over {_LIMIT}",
    )
