"""The activity feed through real processes: resumable, durable, bounded."""

import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from giobba_client import Client, FailedPrecondition, Unavailable
from giobba_client.models import Activity
from tests.e2e.harness import FAST_CONFIG, Stack, stack, wait_until

T = TypeVar("T")


def _replay(client: Client, until: int) -> list[Activity]:
    """Every retained event from the start up to cursor `until`."""
    got: list[Activity] = []
    for event in client.watch_activities(0):
        got.append(event)
        if event.cursor >= until:
            break
    return got


def _retrying(call: Callable[[], T]) -> T:
    """The call once the restarted server answers (the channel may still be backing off)."""

    def attempt() -> list[T]:
        try:
            return [call()]
        except Unavailable:
            return []

    return wait_until(attempt, 30, what="the restarted server")[0]


def _assert_exactly_once_in_order(seen: list[Activity], ids: list[str]) -> None:
    cursors = [e.cursor for e in seen]
    assert cursors == sorted(set(cursors)), "cursors repeat or go backwards"
    kinds = Counter((e.task_id, e.kind) for e in seen if e.task_id in set(ids))
    for task_id in ids:
        for kind in ("CREATED", "STARTED", "COMPLETED"):
            assert kinds[(task_id, kind)] == 1, f"{task_id} {kind} seen {kinds[(task_id, kind)]}x"


def test_monitor_disconnected_at_400_resumes_from_its_cursor(st: Stack) -> None:
    client = st.client()
    specs = [{"name": "noop", "payload": {"i": i}} for i in range(1000)]
    ids: list[str] = []
    for at in range(0, 1000, 250):
        ids += [t.id for t in client.add_tasks(specs[at : at + 250])]
    st.start_worker(concurrency=8)

    seen: list[Activity] = []
    first = client.watch_activities(0)
    for event in first:
        seen.append(event)
        if len(seen) == 400:
            break
    first.close()  # the monitor drops its stream mid-run

    completed = Counter[str]()
    with Client(st.address) as again:  # a new connection, as a restarted monitor would
        for event in again.watch_activities(seen[-1].cursor):
            seen.append(event)
            if event.kind == "COMPLETED":
                completed[event.task_id] += 1
            if len(completed) == 1000:
                break
    assert len(seen) >= 3000
    _assert_exactly_once_in_order(seen, ids)
    # What the monitor saw is exactly the feed as stored, no more, no less.
    assert [e.cursor for e in _replay(client, seen[-1].cursor)] == [e.cursor for e in seen]


def test_monitor_attached_across_a_server_restart_misses_nothing(st: Stack) -> None:
    st.start_worker(concurrency=4)
    seen: list[Activity] = []
    stop = threading.Event()

    def monitor() -> None:
        with Client(st.address) as mine:
            for event in mine.watch_activities(0, resume=True):
                seen.append(event)
                if stop.is_set():
                    return

    reader = threading.Thread(target=monitor, daemon=True)
    reader.start()
    client = st.client()
    before = [t.id for t in client.add_tasks([{"name": "noop"}] * 50)]
    wait_until(lambda: sum(e.kind == "COMPLETED" for e in seen) >= 50, 60, what="first 50")
    st.stop_server()
    st.start_server()
    after = [t.id for t in _retrying(lambda: client.add_tasks([{"name": "noop"}] * 50))]
    wait_until(lambda: sum(e.kind == "COMPLETED" for e in seen) >= 100, 60, what="100 done")
    stop.set()
    client.add_task("noop")  # one more event lets the monitor thread notice `stop`
    reader.join(30)
    _assert_exactly_once_in_order(seen, before + after)
    head = seen[-1].cursor
    stored = [e.cursor for e in _replay(client, head)]
    assert [e.cursor for e in seen] == stored[: len(seen)]


@pytest.mark.parametrize("retention", [10])
def test_cursor_older_than_retention_is_refused(tmp_path: Path, retention: int) -> None:
    config = FAST_CONFIG + f"feed:\n  retention: {retention}\n"
    with stack(tmp_path, config=config) as st:
        st.start_server()
        client = st.client()
        client.add_tasks([{"name": "noop"} for _ in range(40)])
        with pytest.raises(FailedPrecondition, match="older than the retained history"):
            next(iter(client.watch_activities(1)))
        recent = []
        for event in client.watch_activities(0):
            recent.append(event)
            if len(recent) == retention:
                break
        assert recent[-1].cursor == 40
        # `giobba watch --from 1` says the same, in one line, and exits non-zero.
        done = st.cli("watch", "--from", "1", timeout=30)
        assert done.returncode == 1
        assert "older than the retained history" in done.stderr
