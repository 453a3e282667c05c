"""Cron fire lateness: how long after its scheduled time each fire of a job lands.

    .venv/bin/python bench/cron_lateness.py                 # 60 fires, embedded backend
    .venv/bin/python bench/cron_lateness.py --fires 120 --redis

A real `giobba serve` (embedded: in-process broker, SQLite) runs an every-second job.
Each run's `eta` is its scheduled fire time, so two latenesses are reported per fire:

- created: the run's `created_at - eta` (the server's clock when the loop fired it),
- observed: when a live `WatchActivities` client on the same host received the run's
  CREATED event, minus `eta` (the fire stored, announced and delivered over gRPC).

Printed as JSON: median, p90 and worst in milliseconds over `--fires` fires.
"""

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from giobba_client import AsyncClient
from tests.e2e.harness import stack
from tests.support.services import RedisServer

CONFIG = "lockDuration: 30s\njobsTimeoutRefresh: 60s\n"


async def _observe(address: str, fires: int) -> tuple[list[float], list[float]]:
    async with AsyncClient(address) as client:
        job = await client.create_job("* * * * * *", "noop")
        received: dict[str, datetime] = {}
        async for event in client.watch_activities(None, job_id=job.id):
            if event.kind == "CREATED":
                received[event.task_id] = datetime.now(UTC)
            if len(received) >= fires:
                break
        await client.pause_job(job.id)
        page = await client.list_tasks(job_id=job.id, page_size=1000)
    created, observed = [], []
    for task in page.tasks:
        if task.id not in received or task.eta is None or task.created_at is None:
            continue
        created.append((task.created_at - task.eta).total_seconds() * 1000)
        observed.append((received[task.id] - task.eta).total_seconds() * 1000)
    return created, observed


def _summary(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    return {
        "fires": len(ordered),
        "median_ms": round(statistics.median(ordered), 2),
        "p90_ms": round(ordered[int(len(ordered) * 0.9) - 1], 2),
        "worst_ms": round(ordered[-1], 2),
        "best_ms": round(ordered[0], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fires", type=int, default=60)
    parser.add_argument("--redis", action="store_true", help="Redis broker + fire lock")
    args = parser.parse_args()
    with contextlib.ExitStack() as exits:
        tmp = Path(exits.enter_context(tempfile.TemporaryDirectory(prefix="giobba-cron-")))
        broker_url = ""
        if args.redis:
            redis = RedisServer()
            redis.start()
            exits.callback(redis.close)
            broker_url = redis.url
        st = exits.enter_context(stack(tmp, broker_url=broker_url, config=CONFIG))
        st.start_server()
        created, observed = asyncio.run(_observe(st.address, args.fires))
        st.stop_server()
    backend = "redis+sqlite" if args.redis else "embedded"
    report = {
        "backend": backend,
        "created": _summary(created),
        "observed": _summary(observed),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
