"""Giobba benchmarks: the same workload on each backend, side by side, printed as JSON.

    make bench                                   # all backends
    .venv/bin/python bench/run.py --backends embedded --tasks 2000

Per backend: enqueue rate with AddTasks, end-to-end throughput of no-op tasks through one
worker process, the delay between a task's ETA and its start (median, p99, worst over
`--eta-tasks`), and on Redis the commands it executed per task. Ratios compare each
backend with the embedded one measured in the same run. Real processes on loopback,
exactly as users run them (`giobba serve`, `giobba worker`).
"""

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from giobba_client import Client, TaskState
from tests.e2e.harness import HANDLERS, Stack, stack, wait_until
from tests.support.services import MongoServer, RedisServer

BENCH_CONFIG = "lockDuration: 30s\n"
BATCH = 500


@contextlib.contextmanager
def _backend(name: str, tmp: Path) -> Iterator[tuple[Stack, RedisServer | None]]:
    if name == "embedded":
        with stack(tmp, config=BENCH_CONFIG) as st:
            yield st, None
        return
    if name == "redis-sqlite":  # isolates the Redis broker from the MongoDB-wire server
        with RedisServer() as redis, stack(tmp, broker_url=redis.url, config=BENCH_CONFIG) as st:
            yield st, redis
        return
    with RedisServer() as redis, MongoServer() as mongo:
        url = f"{mongo.url.rstrip('/')}/{mongo.database_name()}"
        with stack(tmp, database_url=url, broker_url=redis.url, config=BENCH_CONFIG) as st:
            yield st, redis


def _wait_all(client: Client, ids: list[str], timeout: float = 300) -> None:
    """Until no task of the queue is PENDING or RUNNING (one ListTasks per poll, a constant
    cost: not `wait_task` per task, which adds an RPC per task to the server the worker
    itself depends on and understated the drain by a third), then every task COMPLETED.
    The states past those two are final, so each was complete when the wait ended."""

    def none_live() -> bool:
        live = [TaskState.PENDING, TaskState.RUNNING]
        return not client.list_tasks(queue="default", states=live, page_size=1).tasks

    wait_until(none_live, timeout, interval=0.02, what="every task to complete")
    for task_id in ids:
        task = client.get_task(task_id)
        assert task.state == TaskState.COMPLETED, task


def _enqueue(client: Client, count: int) -> tuple[list[str], float]:
    specs = [{"name": "noop", "payload": {"i": i}} for i in range(count)]
    start = time.perf_counter()
    ids: list[str] = []
    for at in range(0, count, BATCH):
        ids += [t.id for t in client.add_tasks(specs[at : at + BATCH])]
    return ids, time.perf_counter() - start


def _throughput(st: Stack, client: Client, count: int) -> dict[str, float]:
    """Enqueue with no worker (pure submit), then drain with one worker process."""
    ids, enqueue_s = _enqueue(client, count)
    st.start_worker(HANDLERS, "default", 8)
    start = time.perf_counter()
    _wait_all(client, ids)
    drain_s = time.perf_counter() - start
    tasks = [client.get_task(i) for i in ids[-200:]]
    assert all(t.attempts == 1 for t in tasks)
    return {
        "enqueue_tasks_per_s": round(count / enqueue_s, 1),
        "drain_tasks_per_s": round(count / drain_s, 1),
    }


def _eta_delay(client: Client, count: int) -> dict[str, float]:
    base = datetime.now(UTC) + timedelta(seconds=2)
    specs = [
        {"name": "noop", "payload": {}, "eta": base + timedelta(milliseconds=37 * i)}
        for i in range(count)
    ]
    ids = [t.id for t in client.add_tasks(specs)]
    _wait_all(client, ids)
    delays = []
    for task_id in ids:
        task = client.get_task(task_id)
        assert task.started_at is not None and task.eta is not None
        delays.append((task.started_at - task.eta).total_seconds() * 1000)
    delays.sort()
    assert delays[0] >= 0, "a task started before its ETA"
    return {
        "eta_delay_ms_median": round(statistics.median(delays), 2),
        "eta_delay_ms_p99": round(delays[int(len(delays) * 0.99) - 1], 2),
        "eta_delay_ms_worst": round(delays[-1], 2),
    }


def _redis_calls(redis: RedisServer | None) -> int:
    if redis is None:
        return 0
    import redis as redis_py  # noqa: PLC0415

    stats: dict[str, Any] = redis_py.Redis.from_url(redis.url).info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


def run_backend(name: str, tasks: int, eta_tasks: int) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix=f"giobba-bench-{name}-") as tmp,
        _backend(name, Path(tmp)) as (st, redis),
    ):
        st.start_server()
        client = st.client()
        before = _redis_calls(redis)
        out: dict[str, Any] = {"backend": name, "tasks": tasks}
        out.update(_throughput(st, client, tasks))
        if redis is not None:
            out["redis_commands_per_task"] = round((_redis_calls(redis) - before) / tasks, 1)
        out.update(_eta_delay(client, eta_tasks))
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="embedded,redis-sqlite,redis-mongo")
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--eta-tasks", type=int, default=100)
    args = parser.parse_args()
    results = [run_backend(b, args.tasks, args.eta_tasks) for b in args.backends.split(",")]
    base = results[0]
    for result in results[1:]:
        result["ratio_vs_" + base["backend"]] = {
            key: round(result[key] / base[key], 2)
            for key in ("enqueue_tasks_per_s", "drain_tasks_per_s")
        }
    print(json.dumps({"when": datetime.now(UTC).isoformat(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
