"""Feed and callback benchmark: state change -> callback receipt, and feed throughput to
one monitor. Real `giobba serve` and `giobba worker` processes on loopback; printed as JSON.

    .venv/bin/python bench/feed_callbacks.py                          # embedded
    .venv/bin/python bench/feed_callbacks.py --backends embedded,redis-mongo --callbacks 300

Callback delay, per task: the receiver's arrival time (an http.server on 127.0.0.1) minus
the task's `completed_at` (the server's clock: same host). `--callbacks` tasks with a
no-op handler run on one worker with concurrency 8, so deliveries overlap as they would
under load.

Feed throughput: `--events` tasks are submitted with AddTasks (one CREATED event each),
then one monitor (`Client.watch_activities(0)`) reads them all back: `replay` is events/s
from the first to the last received. `live` is a monitor attached at the tail while the
same number of tasks is submitted: events/s it received over the submission window (so
bounded by how fast AddTasks writes them, which it also reports).
"""

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from giobba_client import Client, TaskState
from tests.e2e.harness import Stack, stack, wait_until
from tests.support.receiver import Receiver
from tests.support.services import MongoServer, RedisServer

CONFIG = "lockDuration: 30s\ncallbacks:\n  secret: bench-secret\n"
BATCH = 500


@contextlib.contextmanager
def _backend(name: str, tmp: Path) -> Iterator[Stack]:
    if name == "embedded":
        with stack(tmp, config=CONFIG) as st:
            yield st
        return
    with RedisServer() as redis, MongoServer() as mongo:
        url = f"{mongo.url.rstrip('/')}/{mongo.database_name()}"
        with stack(tmp, database_url=url, broker_url=redis.url, config=CONFIG) as st:
            yield st


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def callbacks(st: Stack, count: int) -> dict[str, Any]:
    client = st.client()
    with Receiver() as receiver:
        url = receiver.script("/done", 200)
        st.start_worker(concurrency=8)
        ids = [t.id for t in client.add_tasks([{"name": "noop", "callback": url}] * count)]
        wait_until(lambda: len(receiver.at("/done")) >= count, 300, 0.05, what="callbacks")
        arrived = {p.json()["id"]: p.at for p in receiver.at("/done")}
    delays = []
    for task_id in ids:
        task = client.get_task(task_id)
        assert task.state == TaskState.COMPLETED and task.completed_at is not None
        delays.append((arrived[task_id] - task.completed_at.timestamp()) * 1000)
    return {
        "tasks": count,
        "delay_ms_median": round(statistics.median(delays), 2),
        "delay_ms_p99": round(_pct(delays, 0.99), 2),
        "delay_ms_max": round(max(delays), 2),
    }


def _submit(client: Client, count: int) -> float:
    began = time.monotonic()
    for at in range(0, count, BATCH):
        client.add_tasks([{"name": "noop", "queue": "feedbench"}] * min(BATCH, count - at))
    return time.monotonic() - began


def feed(st: Stack, count: int) -> dict[str, Any]:
    client = st.client()
    start = 0  # the cursor just before this benchmark's events: a probe task's
    head_probe = client.add_task("noop", queue="feedbench-probe")
    for event in client.watch_activities(start, task_ids=[head_probe.id]):
        start = event.cursor
        break
    submit_s = _submit(client, count)
    with Client(st.address) as reader:
        first, last = 0.0, 0.0
        replayed = reader.watch_activities(start, queues=["feedbench"])
        for received, _ in enumerate(replayed, 1):
            last = time.monotonic()
            first = first or last
            if received >= count:
                break
        replayed.close()
    replay = count / max(last - first, 1e-9)

    got: list[float] = []
    ready = threading.Event()

    def monitor() -> None:
        with Client(st.address) as watcher:
            stream = watcher.watch_activities(None, queues=["feedbench"])
            ready.set()
            for _ in stream:
                got.append(time.monotonic())
                if len(got) >= count:
                    break
            stream.close()

    thread = threading.Thread(target=monitor, daemon=True)
    thread.start()
    ready.wait(30)
    # The stream is open once its first event arrives; a probe task confirms it.
    while not got:
        client.add_task("noop", queue="feedbench")
        threading.Event().wait(0.05)
    live_submit_s = _submit(client, count - len(got))
    thread.join(300)
    live = len(got) / max(got[-1] - got[0], 1e-9)
    return {
        "events": count,
        "replay_events_per_s": round(replay),
        "live_events_per_s": round(live),
        "add_tasks_events_per_s": round(count / submit_s),
        "live_submit_events_per_s": round(count / max(live_submit_s, 1e-9)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="embedded")
    parser.add_argument("--callbacks", type=int, default=200)
    parser.add_argument("--events", type=int, default=10_000)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    for name in args.backends.split(","):
        with tempfile.TemporaryDirectory() as tmp, _backend(name, Path(tmp)) as st:
            st.start_server()
            results[name] = {
                "callback": callbacks(st, args.callbacks),
                "feed": feed(st, args.events),
            }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
