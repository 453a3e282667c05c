"""Celery side of bench/peers.py (runs with `.venv-peers/bin/python`).

The worker loads this module (`celery -A peers_celery worker`), so the app is built at
import from `PEERS_REDIS_URL`: Redis is both the broker and the result backend, so every
task's result is stored (with its state and `date_done`), as Giobba stores each result.
Everything else is Celery's default (JSON, early ack, results kept for a day).
"""

import os

import peers_cli
from celery import Celery  # type: ignore[import-untyped]
from celery.result import AsyncResult  # type: ignore[import-untyped]

URL = os.environ["PEERS_REDIS_URL"]
app = Celery("peers_celery", broker=URL, backend=URL)
# Only silences 5.x's deprecation warning; the broker is up before any worker starts.
app.conf.broker_connection_retry_on_startup = True


def noop(i: int) -> dict[str, int]:
    """Does nothing, like Giobba's `noop` handler; the backend stores its `{}`."""
    return {}


# Named explicitly: `enqueue` runs with this file as __main__, the worker imports it.
noop_task = app.task(name="noop")(noop)


def enqueue(tasks: int, batch: int) -> list[str]:
    """`apply_async` on one shared producer (one connection and channel): Celery has no
    batch send (`batch` is unused), and a `group` of 500 still sends each message on its
    own, with group bookkeeping on top (~20% slower when tried here)."""
    with app.producer_or_acquire() as producer:
        return [str(noop_task.apply_async((i,), producer=producer).id) for i in range(tasks)]


def record_key(task_id: str) -> str:
    return str(app.backend.get_key_for_task(task_id).decode())


def verify(ids: list[str]) -> list[str]:
    problems = []
    for task_id in ids:
        result = AsyncResult(task_id, app=app)
        if result.state != "SUCCESS" or result.result != {}:
            problems.append(f"{task_id}: {result.state} {result.result!r}")
    return problems


if __name__ == "__main__":
    peers_cli.main(enqueue, record_key, verify)
