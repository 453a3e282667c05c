"""Handlers for the worker-runtime tests: each run leaves a line in the record file.

Line format: `<task id> <event> <attempt> <unix time> <pid> <extra>`; events are
`start`, `done`, `cancelled` (the handler saw its context cancelled) and `late` (the
handler itself sent a CompleteTask after being cancelled or frozen; extra = status code).
"""

import os
import threading
import time
from typing import Any

import grpc

from giobba_client import Handlers, Task, TaskContext
from giobba_client._gen.giobba.v1 import worker_service_pb2 as ws
from giobba_client._gen.giobba.v1 import worker_service_pb2_grpc as ws_grpc

handlers = Handlers()
_lock = threading.Lock()


def record(task: Task, event: str, attempt: int, extra: str = "") -> None:
    line = f"{task.id} {event} {attempt} {time.time():.6f} {os.getpid()} {extra}\n"
    with _lock, open(os.environ["GIOBBA_TEST_RECORD"], "a", encoding="utf-8") as out:
        out.write(line)


def _runs_so_far(task: Task) -> int:
    """How many times this task has started, this run included. Not the attempt number:
    a task handed back on shutdown starts again as the same attempt."""
    with _lock, open(os.environ["GIOBBA_TEST_RECORD"], encoding="utf-8") as log:
        return sum(1 for line in log if line.startswith(f"{task.id} start "))


def _seconds(task: Task) -> float:
    """`seconds` is a number, or a list with one entry per run (the last one repeats)."""
    value = task.payload.get("seconds", 0)
    if isinstance(value, list):
        return float(value[min(_runs_so_far(task), len(value)) - 1])
    return float(value)


def _late_complete(ctx: TaskContext, server: str) -> str:
    """Report on our own with this attempt's token, as a slow worker would."""
    with grpc.insecure_channel(server) as channel:
        stub = ws_grpc.WorkerServiceStub(channel)
        request = ws.CompleteTaskRequest(
            task_id=ctx.task.id, lease_token=ctx.lease_token, result='{"late": true}'
        )
        try:
            stub.CompleteTask(request, timeout=10)
        except grpc.RpcError as exc:
            return str(exc.code().name)
    return "OK"


@handlers("sleepy")
def sleepy(ctx: TaskContext, task: Task) -> dict[str, Any]:
    """Waits, stopping as soon as its context is cancelled."""
    record(task, "start", ctx.attempt, ctx.lease_token)
    if ctx.wait(_seconds(task)):
        record(task, "cancelled", ctx.attempt, ctx.reason.replace(" ", "_"))
        return {"cancelled": True}
    record(task, "done", ctx.attempt)
    return {"pid": os.getpid(), "attempt": ctx.attempt}


@handlers("stubborn")
def stubborn(ctx: TaskContext, task: Task) -> dict[str, Any]:
    """Ignores cancellation, then tries to report its result itself (it must be refused
    when the attempt was killed or recovered meanwhile)."""
    record(task, "start", ctx.attempt, ctx.lease_token)
    run = _runs_so_far(task)
    threading.Event().wait(_seconds(task))
    if ctx.cancelled or run == task.payload.get("late_report_on_run"):
        code = _late_complete(ctx, str(task.payload["server"]))
        record(task, "late", ctx.attempt, code)
    record(task, "done", ctx.attempt)
    return {"pid": os.getpid(), "attempt": ctx.attempt}


@handlers("block_loop")
async def block_loop(ctx: TaskContext, task: Task) -> dict[str, Any]:
    """An async handler that blocks the worker's event loop outright."""
    record(task, "start", ctx.attempt, ctx.lease_token)
    time.sleep(_seconds(task))  # noqa: ASYNC251 - blocking on purpose
    record(task, "done", ctx.attempt)
    return {"pid": os.getpid(), "attempt": ctx.attempt}


@handlers("hold_gil")
def hold_gil(ctx: TaskContext, task: Task) -> dict[str, Any]:
    """One long C call that never releases the GIL: sum() over a range runs in C with no
    bytecode boundary, so no other thread of this process runs until it returns."""
    record(task, "start", ctx.attempt, ctx.lease_token)
    probe = 30_000_000  # long enough to calibrate well on a busy machine
    began = time.perf_counter()
    sum(range(probe))
    rate = probe / max(time.perf_counter() - began, 1e-6)
    total = sum(range(int(rate * float(task.payload["seconds"]))))
    record(task, "done", ctx.attempt, str(total % 10))
    return {"pid": os.getpid(), "attempt": ctx.attempt}


@handlers("fork_child")
def fork_child(ctx: TaskContext, task: Task) -> dict[str, Any]:
    """Forks a process that outlives the worker (it inherits every pipe the worker holds,
    the heartbeat child's input included), then waits like `sleepy`."""
    child = os.fork()
    if child == 0:  # the forked copy: hold the inherited descriptors, then vanish
        threading.Event().wait(float(task.payload.get("child_seconds", 60)))
        os._exit(0)
    record(task, "start", ctx.attempt, str(child))
    ctx.wait(_seconds(task))
    record(task, "done", ctx.attempt)
    return {"pid": os.getpid(), "attempt": ctx.attempt}
