"""Giobba's reference handlers: `giobba worker --app workers/python/handlers.py`.

They are the shared vocabulary of the docs, the demo and the conformance kit; the Go and
TypeScript workers implement the same names with the same meaning.
"""

import json
from typing import Any

from giobba_client import Cancelled, Handlers, NoRetry, Task, TaskContext

handlers = Handlers()


@handlers("echo")
def echo(ctx: TaskContext, task: Task) -> dict[str, Any]:
    """The result is the payload, unchanged."""
    return task.payload


@handlers("noop")
def noop(ctx: TaskContext, task: Task) -> dict[str, Any]:
    """Does nothing: for throughput measurements."""
    return {}


@handlers("sleep")
def sleep(ctx: TaskContext, task: Task) -> dict[str, Any]:
    """Sleep `seconds` (default 1), stopping early if the task is cancelled."""
    seconds = float(task.payload.get("seconds", 1))
    if ctx.wait(seconds):
        raise Cancelled(f"cancelled after starting a {seconds:g}s sleep: {ctx.reason}")
    return {"slept": seconds}


@handlers("fail")
def fail(ctx: TaskContext, task: Task) -> dict[str, Any]:
    """Always fails, with the payload's `message`; for good (no retry) with `no_retry`."""
    message = str(task.payload.get("message", "failed on purpose"))
    if task.payload.get("no_retry"):
        raise NoRetry(message)
    raise RuntimeError(message)


@handlers("process")
def process(ctx: TaskContext, task: Task) -> dict[str, Any]:
    """The seed's example: five 0.5 s steps, checking for cancellation between them."""
    steps = []
    for step in range(1, 6):
        if ctx.wait(0.5):
            raise Cancelled(f"cancelled at step {step}: {ctx.reason}")
        steps.append(step)
    return {"steps": steps, "input": json.loads(json.dumps(task.payload))}
