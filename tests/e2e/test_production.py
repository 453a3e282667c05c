"""Issue 3's guarantees on Redis + MongoDB, through real server and worker processes."""

import contextlib
import json
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from giobba_client import FailedPrecondition, InvalidArgument, TaskState, Unavailable
from tests.e2e.harness import RECORDING, Stack, stack, wait_until
from tests.support.services import MongoServer, RedisServer

WORKERS_APP = Path(__file__).resolve().parent / "apps" / "workers_app.py"

PRODUCTION_CONFIG = "lockDuration: 10s\nretry:\n  base: 100ms\n  cap: 1s\n"


def _records(path: Path) -> list[dict[str, str]]:
    lines = path.read_text().splitlines() if path.exists() else []
    keys = ("id", "event", "name", "priority", "time", "pid")
    return [dict(zip(keys, line.split(), strict=True)) for line in lines if line.strip()]


@pytest.fixture
def urls(
    clean_redis: RedisServer, mongo_server: MongoServer, mongo_database: str
) -> tuple[str, str]:
    return f"{mongo_server.url.rstrip('/')}/{mongo_database}", clean_redis.url


@contextlib.contextmanager
def _servers(tmp: Path, urls: tuple[str, str], count: int) -> Iterator[list[Stack]]:
    """`count` servers sharing one Redis and one MongoDB, recording into one file."""
    with contextlib.ExitStack() as stacks:
        servers = []
        for i in range(count):
            (tmp / f"s{i}").mkdir()
            st = stacks.enter_context(stack(tmp / f"s{i}", urls[0], urls[1], PRODUCTION_CONFIG))
            st.env["GIOBBA_TEST_RECORD"] = str(tmp / "executions.log")
            st.start_server()
            servers.append(st)
        yield servers


@pytest.mark.timeout(900)  # 5,000 real tasks through FerretDB on a shared 2-core machine
def test_two_servers_two_workers_run_5000_tasks_exactly_once_in_priority_order(
    tmp_path: Path, urls: tuple[str, str]
) -> None:
    with _servers(tmp_path, urls, 2) as (one, two):
        specs = [
            {"name": "record", "payload": {"i": i}, "priority": (i * 7) % 11} for i in range(5000)
        ]
        ids: list[str] = []
        for at in range(0, len(specs), 500):
            target = one if at % 1000 == 0 else two
            ids += [t.id for t in target.client().add_tasks(specs[at : at + 500])]
        one.start_worker(RECORDING, "default", 1)
        two.start_worker(RECORDING, "default", 1)
        for task_id in ids[::50]:
            assert one.client().wait_task(task_id, 300).done
        wait_until(lambda: len(_records(tmp_path / "executions.log")) >= 5000, 300, 0.2)
        runs = _records(tmp_path / "executions.log")
        assert sorted(r["id"] for r in runs) == sorted(ids)  # each exactly once
        by_worker: dict[str, list[int]] = defaultdict(list)
        for run in runs:
            by_worker[run["pid"]].append(int(run["priority"]))
        assert len(by_worker) == 2, "both workers took part"
        for priorities in by_worker.values():  # all queued before either worker started
            assert priorities == sorted(priorities, reverse=True)
        page = one.client().list_tasks(states=[TaskState.PENDING, TaskState.RUNNING], page_size=10)
        assert page.tasks == []


def test_redis_flushed_with_500_pending_then_restart_runs_each_once(
    tmp_path: Path, urls: tuple[str, str]
) -> None:
    with _servers(tmp_path, urls, 1) as (st,):
        client = st.client()
        specs = [{"name": "record", "payload": {"i": i}, "priority": i % 11} for i in range(500)]
        ids = [t.id for t in client.add_tasks(specs)]
        redis.Redis.from_url(urls[1]).flushall()
        st.stop_server()
        st.start_server()
        st.start_worker(RECORDING, "default", 4)
        for task_id in ids:
            assert client.wait_task(task_id, 120).task.state == TaskState.COMPLETED
        runs = _records(tmp_path / "executions.log")
        assert sorted(r["id"] for r in runs) == sorted(ids)


def test_mongodb_down_answers_unavailable_and_recovers_without_restart(
    tmp_path: Path, clean_redis: RedisServer, stoppable_mongo: MongoServer
) -> None:
    mongo_server = stoppable_mongo
    urls = (f"{mongo_server.url.rstrip('/')}/outage", clean_redis.url)
    with _servers(tmp_path, urls, 1) as (st,):
        client = st.client()
        before = client.add_task("echo", {"n": 1})
        mongo_server.stop()
        try:
            with pytest.raises(Unavailable):
                client.add_task("echo", {"n": 2})
            assert redis.Redis.from_url(urls[1]).dbsize() > 0  # the first task is there
        finally:
            mongo_server.start()
        after = wait_until(lambda: _try_add(st), 30, 0.2, "submits to flow again")
        st.start_worker(concurrency=2)
        for task_id in (before.id, after):
            assert client.wait_task(task_id, 60).task.state == TaskState.COMPLETED
        names = [t.payload for t in client.list_tasks(page_size=10).tasks]
        assert {"n": 2} not in names  # the refused submit left nothing behind


def _try_add(st: Stack) -> str:
    with contextlib.suppress(Unavailable):
        return st.client().add_task("echo", {"n": 3}).id
    return ""


@pytest.mark.parametrize("backend", ["embedded", "redis-mongo"])
def test_awkward_keys_round_trip_and_20mb_is_refused(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    database_url, broker_url = "", ""
    if backend == "redis-mongo":
        database_url, broker_url = request.getfixturevalue("urls")
    with stack(tmp_path, database_url, broker_url) as st:
        st.start_server()
        st.start_worker(concurrency=1)
        payload = {"a.b": 1, "$x": 2, "ünï": "✓", "big": 2**62, "f": 0.1, "n": None}
        added = st.cli("task", "add", "echo", "--payload", json.dumps(payload))
        assert added.returncode == 0, added.stderr
        task_id = added.stdout.strip()
        assert st.client().wait_task(task_id, 30).task.state == TaskState.COMPLETED
        shown = json.loads(st.cli("task", "get", task_id, "--json").stdout)
        assert shown["payload"] == payload
        assert shown["result"] == payload
        with pytest.raises(InvalidArgument, match="MiB") as caught:
            st.client().add_task("echo", {"blob": "x" * (20 * 1024 * 1024)})
        assert "payload" in str(caught.value)
        assert len(st.client().list_tasks().tasks) == 1


def test_redis_restarted_empty_under_a_running_server_is_restored(
    tmp_path: Path, urls: tuple[str, str], clean_redis: RedisServer
) -> None:
    with _servers(tmp_path, urls, 1) as (st,):
        client = st.client()
        later = client.add_task("echo", {"n": 1}, eta=timedelta(seconds=4))
        manual = client.add_task("echo", {"n": 2}, manual=True)
        doomed = client.add_task("echo", {"n": 3}, manual=True)
        clean_redis.stop()
        clean_redis.start()  # no persistence: it comes back empty
        st.start_worker(concurrency=2)
        # The server notices the new epoch on its next sweep and restores what it knew.
        wait_until(lambda: _released(st, manual.id), 30, 0.2, "AutoTask to work again")
        assert st.client().revoke_task(doomed.id).task.state == TaskState.REVOKED
        for task_id in (later.id, manual.id):
            assert client.wait_task(task_id, 60).task.state == TaskState.COMPLETED


def test_a_redis_outage_longer_than_a_sweep_leaves_the_reaper_running(
    tmp_path: Path, urls: tuple[str, str], clean_redis: RedisServer
) -> None:
    """Redis down across several reaper sweeps (lease 2 s: it sweeps at least every 2 s),
    then back empty: the reaper keeps going, restores what the broker lost, and still
    expires and recovers tasks afterwards."""
    config = "lockDuration: 2s\nretry:\n  base: 100ms\n  cap: 1s\n"
    with stack(tmp_path, urls[0], urls[1], config) as st:
        server = st.start_server()
        client = st.client()
        waiting = client.add_task("echo", {"n": 1})
        clean_redis.stop()
        outage_ends = time.monotonic() + 5
        wait_until(lambda: "reaper sweep failed" in server.text(), 20, 0.1, "a failed sweep")
        wait_until(lambda: time.monotonic() > outage_ends, 10, 0.1, "the outage")
        clean_redis.start()  # no persistence: it comes back empty
        doomed = client.add_task("echo", {"n": 2}, manual=True, expires_at=timedelta(seconds=3))
        st.start_worker(concurrency=2)
        assert client.wait_task(waiting.id, 60).task.state == TaskState.COMPLETED
        expired = client.wait_task(doomed.id, 60).task
        assert (expired.state, expired.error) == (TaskState.REVOKED, "expired")


def _released(st: Stack, task_id: str) -> bool:
    with contextlib.suppress(FailedPrecondition):
        st.client().auto_task(task_id)
        return True
    return False


def test_kill_sent_to_one_server_reaches_a_worker_on_another(
    tmp_path: Path, urls: tuple[str, str]
) -> None:
    """KillTask on server B; the worker streams cancellations from server A: the push
    crosses servers on Redis `giobba-services` (heartbeats are 10 s apart here)."""
    config = "lockDuration: 30s\nretry:\n  base: 100ms\n  cap: 1s\n"
    with contextlib.ExitStack() as stacks:
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        a = stacks.enter_context(stack(tmp_path / "a", urls[0], urls[1], config))
        b = stacks.enter_context(stack(tmp_path / "b", urls[0], urls[1], config))
        a.start_server()
        b.start_server()
        a.start_worker(WORKERS_APP, "default", 1)
        task_id = a.client().add_task("sleepy", {"seconds": 60}).id
        wait_until(lambda: _events(a, task_id, "start"), 30, 0.05, "the task to start")
        asked = time.time()
        assert b.client().kill_task(task_id).state == TaskState.KILLED
        cancelled = wait_until(lambda: _events(a, task_id, "cancelled"), 10, 0.05, "cancel")
        assert float(cancelled[0][3]) - asked < 2, "the cancel came later than a push would"
        assert cancelled[0][5] == "killed"


def _events(st: Stack, task_id: str, event: str) -> list[list[str]]:
    path = Path(st.env["GIOBBA_TEST_RECORD"])
    lines = path.read_text().splitlines() if path.exists() else []
    return [p for p in (line.split(" ", 5) for line in lines) if p[:2] == [task_id, event]]
