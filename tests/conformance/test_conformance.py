"""The worker conformance kit: what every worker implementation must do, driven from Python
against a live server. Parametrized by implementation (python, go, node: see kit.WORKERS);
a new implementation passes when its command is added there and these scenarios hold.

The stack runs with a 3 s lease (heartbeats every second) and fast retries.
"""

import json
import signal
import time
from typing import Any

from giobba_client import Task, TaskState
from tests.conformance.kit import start_worker
from tests.e2e.harness import Stack, wait_until

RICH: dict[str, Any] = {
    "text": 'héllo wörld — 日本語 — עברית — 🌍🚀 — "quoted" \\ back\nline\ttab \u2028 \u0000',
    "big": 2**64 + 1,
    "neg": -(2**53),
    "floats": [0.1, -2.5e-300, 1.7976931348623157e308, 3.141592653589793],
    "nulls": [None, {"x": None}],
    "nested": {"a": [{"b": [1, [2, [3, {"c": "ç"}]]]}], "empty": {}, "list": []},
    "bool": [True, False],
}


def strict(value: Any) -> str:
    """Compare JSON values with their types: 1 and 1.0 differ, key order does not."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def finished(st: Stack, task_id: str, timeout: float = 30.0) -> Task:
    result = st.client().wait_task(task_id, timeout=timeout)
    assert result.done, f"task {task_id} still {result.task.state} after {timeout}s"
    return result.task


def running(st: Stack, task_id: str, timeout: float = 15.0) -> Task:
    def check() -> Task | None:
        task = st.client().get_task(task_id)
        return task if task.state == TaskState.RUNNING else None

    task = wait_until(check, timeout, what=f"task {task_id} RUNNING")
    assert task is not None
    return task


def test_priority_order(st: Stack, impl: str) -> None:
    """Highest priority first across the queue, FIFO within a priority."""
    priorities = [3, 0, 7, 10, 3, 5, 7, 1, 10, 0, 5, 3]
    tasks = st.client().add_tasks(
        [{"name": "echo", "payload": {"n": n}, "queue": "prio", "priority": p}
         for n, p in enumerate(priorities)]
    )  # fmt: skip
    start_worker(st, impl, queues="prio", concurrency=1)
    done = [finished(st, t.id) for t in tasks]
    assert all(t.state == TaskState.COMPLETED for t in done)
    ran = [t.payload["n"] for t in sorted(done, key=lambda t: t.started_at or 0)]
    expected = [n for n, _ in sorted(enumerate(priorities), key=lambda item: -item[1])]
    assert ran == expected


def test_retries_then_failed(st: Stack, impl: str) -> None:
    """A failing handler is retried max_retries times (3 runs), then FAILED with its error;
    a no-retry failure ends FAILED after one run whatever retries remain."""
    start_worker(st, impl, concurrency=2)
    client = st.client()
    retried = client.add_task("fail", {"message": "boom"}, max_retries=2)
    permanent = client.add_task("fail", {"message": "bad input", "no_retry": True}, max_retries=5)
    task = finished(st, retried.id)
    assert (task.state, task.error, task.attempts, task.retries) == (
        TaskState.FAILED, "boom", 3, 2,
    )  # fmt: skip
    task = finished(st, permanent.id)
    assert (task.state, task.error, task.attempts) == (TaskState.FAILED, "bad input", 1)


def test_results_and_errors_round_trip(st: Stack, impl: str) -> None:
    """echo's result is its payload, value for value (unicode, big integers, floats,
    nulls, nesting); a handler's error message is stored unchanged; an unknown handler
    fails the task with an error that names it."""
    start_worker(st, impl, concurrency=3)
    client = st.client()
    echo = client.add_task("echo", RICH)
    message = 'échec 💥 — ошибка «quoted» "x"\nsecond line \u2028 ✓'
    fail = client.add_task("fail", {"message": message, "no_retry": True})
    unknown = client.add_task("no-such-handler", {})
    task = finished(st, echo.id)
    assert task.state == TaskState.COMPLETED
    assert strict(task.result) == strict(RICH)
    task = finished(st, fail.id)
    assert (task.state, task.error) == (TaskState.FAILED, message)
    task = finished(st, unknown.id)
    assert task.state == TaskState.FAILED
    assert "no-such-handler" in task.error


def test_kill_cancels_the_handler_and_frees_the_slot(st: Stack, impl: str) -> None:
    """KillTask on a running task: KILLED at once, the handler is cancelled within about a
    second, and the worker's only slot runs the next task right away."""
    start_worker(st, impl, concurrency=1)
    client = st.client()
    long = client.add_task("sleep", {"seconds": 60})
    running(st, long.id)
    killed_at = time.monotonic()
    client.kill_task(long.id, "enough")
    task = finished(st, long.id, timeout=2)
    assert task.state == TaskState.KILLED
    after = client.add_task("echo", {"after": "kill"})
    task = finished(st, after.id, timeout=10)
    assert task.state == TaskState.COMPLETED
    # The slot was freed by the cancelled handler, not by a 60 s sleep or a lease lapse.
    assert time.monotonic() - killed_at < 5
    assert client.get_task(long.id).state == TaskState.KILLED


def test_heartbeats_keep_a_long_task_past_its_lease(st: Stack, impl: str) -> None:
    """An 8 s task on a 3 s lease completes on its first attempt: heartbeats renew it."""
    start_worker(st, impl, concurrency=1)
    task = st.client().add_task("sleep", {"seconds": 8}, max_retries=0)
    task = finished(st, task.id, timeout=30)
    assert (task.state, task.attempts, task.retries) == (TaskState.COMPLETED, 1, 0)
    assert task.result == {"slept": 8}


def test_graceful_shutdown_hands_work_back(st: Stack, impl: str) -> None:
    """SIGTERM with a short drain: the unfinished task is released (not failed, no retry
    used), the worker exits 0, and another worker completes it."""
    first = start_worker(st, impl, concurrency=1, drain=0.5)
    client = st.client()
    task = client.add_task("sleep", {"seconds": 3}, max_retries=0)
    owner = running(st, task.id).worker_id

    def holds_it() -> bool:  # the worker has the lease in hand, not just the server
        return any(task.id in w.running_task_ids for w in client.list_workers())

    wait_until(holds_it, 10, what="the worker's heartbeat to report the task")
    first.signal(signal.SIGTERM)
    assert first.popen.wait(timeout=15) == 0, first.text()

    def handed_back() -> Task | None:
        current = client.get_task(task.id)
        return current if current.state == TaskState.PENDING else None

    pending = wait_until(handed_back, 10, what="task handed back to PENDING")
    assert pending is not None and pending.retries == 0
    start_worker(st, impl, concurrency=1)
    done = finished(st, task.id, timeout=30)
    assert (done.state, done.retries) == (TaskState.COMPLETED, 0)
    assert done.worker_id and done.worker_id != owner
