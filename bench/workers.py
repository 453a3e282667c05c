"""No-op throughput of each worker implementation: the same drain of `--tasks` no-op tasks,
queued before the worker starts, on a fresh embedded server per implementation.

    .venv/bin/python bench/workers.py                          # 2,000 tasks, concurrency 16
    .venv/bin/python bench/workers.py --tasks 5000 --concurrency 32 --impl go --impl node

tasks/s is tasks / (last completed_at - first started_at), both on the server's clock, so
process start-up is left out. Printed as JSON, one object per implementation. Needs the
Go and Node workers built (`make workers`).
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from giobba_client import TaskState
from tests.conformance.kit import IMPLEMENTATIONS, build_workers, start_worker
from tests.e2e.harness import stack, wait_until

CONFIG = "lockDuration: 30s\n"


def drain(impl: str, tasks: int, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, stack(Path(tmp), config=CONFIG) as st:
        st.start_server()
        client = st.client()
        ids: list[str] = []
        for start in range(0, tasks, 500):
            batch = [{"name": "noop", "queue": "bench"} for _ in range(min(500, tasks - start))]
            ids.extend(t.id for t in client.add_tasks(batch))
        began = time.monotonic()
        start_worker(st, impl, queues="bench", concurrency=concurrency)

        def done() -> bool:
            page = client.list_tasks(queue="bench", states=[TaskState.PENDING, TaskState.RUNNING])
            return not page.tasks

        wait_until(done, 600, interval=0.2, what="the drain")
        wall = time.monotonic() - began
        finished = [client.get_task(i) for i in ids]
        assert all(t.state == TaskState.COMPLETED for t in finished)
        first = min(t.started_at for t in finished if t.started_at)
        last = max(t.completed_at for t in finished if t.completed_at)
        span = (last - first).total_seconds()
        return {
            "worker": impl,
            "tasks": tasks,
            "concurrency": concurrency,
            "seconds": round(span, 3),
            "tasks_per_s": round(tasks / span, 1),
            "wall_seconds_incl_startup": round(wall, 3),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--impl", action="append", choices=IMPLEMENTATIONS)
    args = parser.parse_args()
    build_workers()
    for impl in args.impl or IMPLEMENTATIONS:
        print(json.dumps(drain(impl, args.tasks, args.concurrency)), flush=True)


if __name__ == "__main__":
    main()
