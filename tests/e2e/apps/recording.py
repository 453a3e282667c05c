"""Test handlers that leave a trace of every run, to check order and exactly-once."""

import os
import threading
import time
from typing import Any

from giobba_client import Handlers, Task, TaskContext

handlers = Handlers()
_lock = threading.Lock()


def _record(task: Task, event: str) -> None:
    line = f"{task.id} {event} {task.name} {task.priority} {time.time():.6f} {os.getpid()}\n"
    with _lock, open(os.environ["GIOBBA_TEST_RECORD"], "a", encoding="utf-8") as out:
        out.write(line)


@handlers("record")
def record(ctx: TaskContext, task: Task) -> dict[str, Any]:
    _record(task, "start")
    seconds = float(task.payload.get("seconds", 0))
    if seconds and ctx.wait(seconds):
        return {"cancelled": True}
    return {"ok": True, "pid": os.getpid()}


@handlers("record_fail")
def record_fail(ctx: TaskContext, task: Task) -> dict[str, Any]:
    _record(task, "start")
    raise RuntimeError(str(task.payload.get("message", "failed on purpose")))
