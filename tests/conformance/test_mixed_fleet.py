"""A mixed fleet: one server, a Python, a Go and a Node worker on the same queue, fed from
the Python SDK and the TypeScript client at once. Every task completes exactly once and
its result does not depend on which worker ran it; a payload written by TypeScript reads
back unchanged in Python and Go."""

import json
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from giobba_client import Task, TaskState
from tests.conformance.kit import IMPLEMENTATIONS, build_workers, go_get, node_submit, start_worker
from tests.e2e.harness import Stack, stack, wait_until

QUEUE = "mixed"
PER_CLIENT = 1500
# Versions the workers report in heartbeats, by implementation.
VERSIONS = {"go/": "go", "node/": "node"}


def payload(i: int) -> dict[str, Any]:
    # 60 distinct payloads, each run many times by whichever worker leases it.
    k = i % 60
    return {"k": k, "text": f"ünïcødé ✓ {k} 🌍", "n": k * 2**47, "f": k + 0.25, "z": None}


def strict(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    build_workers()
    with stack(tmp_path_factory.mktemp("fleet")) as st:
        st.start_server()
        for impl in IMPLEMENTATIONS:
            start_worker(st, impl, queues=QUEUE, concurrency=8)
        yield st


def implementation(version: str) -> str:
    return next((impl for prefix, impl in VERSIONS.items() if version.startswith(prefix)), "python")


@pytest.mark.timeout(400)
def test_3000_tasks_from_two_clients_complete_exactly_once(fleet: Stack) -> None:
    client = fleet.client()
    lines = [
        json.dumps({"name": "echo", "queue": QUEUE, "payload": payload(i)})
        for i in range(PER_CLIENT)
    ]
    from_node: list[str] = []
    # The TypeScript client submits while the Python SDK does.
    submitter = threading.Thread(target=lambda: from_node.extend(node_submit(fleet, lines)))
    submitter.start()
    from_python: list[Task] = []
    for start in range(0, PER_CLIENT, 500):
        specs = [
            {"name": "echo", "queue": QUEUE, "payload": payload(i)}
            for i in range(start, start + 500)
        ]
        from_python.extend(client.add_tasks(specs))
    submitter.join(timeout=180)
    assert len(from_node) == PER_CLIENT
    ids = [t.id for t in from_python] + from_node
    assert len(set(ids)) == 2 * PER_CLIENT

    def all_done() -> bool:
        page = client.list_tasks(queue=QUEUE, states=[TaskState.PENDING, TaskState.RUNNING])
        return not page.tasks

    wait_until(all_done, 300, interval=0.5, what="every task to finish")
    tasks = [client.get_task(i) for i in ids]
    assert Counter(t.state for t in tasks) == {TaskState.COMPLETED: 2 * PER_CLIENT}
    # Leased once, never retried or recovered: each ran exactly once.
    assert {(t.attempts, t.retries) for t in tasks} == {(1, 0)}

    workers = {w.id: implementation(w.version) for w in client.list_workers() if w.kind == "WORKER"}
    ran_by = Counter(workers.get(t.worker_id, "?") for t in tasks)
    assert set(ran_by) == set(IMPLEMENTATIONS), ran_by
    # Same payload, same result, whichever implementation ran it.
    results: dict[int, set[str]] = {}
    for t in tasks:
        assert strict(t.result) == strict(t.payload)
        results.setdefault(t.payload["k"], set()).add(strict(t.result))
    assert all(len(r) == 1 for r in results.values())

    # Every worker reports exactly the completions it made: no double completion.
    def reported() -> int:
        return sum(w.completed for w in client.list_workers() if w.id in workers)

    wait_until(lambda: reported() == 2 * PER_CLIENT, 15, what="heartbeat counts to settle")
    print(f"mixed fleet: {dict(ran_by)}")


RICH_TS = {
    "unicode": 'héllo 🌍 日本語 עברית Ελληνικά \u2028 "q" \\ \n\t',
    "nested": {"a": [{"b": [1, [2, [3, {"c": None}]]]}], "empty": {}, "list": []},
    "ints": [2**53, -(2**53), 2**53 - 1, 0, -1, 2**31],
    "floats": [0.1, -2.5e-300, 1.7976931348623157e308, 3.141592653589793, 6.02e23],
    "nulls": [None, {"x": None}],
    "bool": True,
}


def test_typescript_payload_reads_back_unchanged_in_python_and_go(fleet: Stack) -> None:
    """Submitted with the TypeScript client, read back by the Python SDK and by a Go
    program, and echoed by each worker implementation: the same values, types included."""
    line = json.dumps({"name": "echo", "queue": QUEUE, "payload": RICH_TS})
    ids = node_submit(fleet, [line] * 9)
    expected = strict(RICH_TS)
    client = fleet.client()
    for task_id in ids:
        task = client.wait_task(task_id, timeout=30).task
        assert task.state == TaskState.COMPLETED
        assert strict(task.payload) == expected
        assert strict(task.result) == expected
        from_go = json.loads(go_get(fleet, task_id))
        assert strict(from_go["payload"]) == expected
        assert strict(from_go["result"]) == expected
