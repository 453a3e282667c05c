"""`giobba workers`: the live workers (and, on request, servers) as a table."""

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from giobba_client.cli.output import dumps, print_table
from giobba_client.client import Client
from giobba_client.models import WorkerInfo

COLUMNS = (
    "id",
    "host",
    "pid",
    "queues",
    "concurrency",
    "running",
    "completed",
    "failed",
    "last seen",
)


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    cmd = sub.add_parser("workers", help="list live workers (gone 3 heartbeats after dying)")
    cmd.add_argument("--servers", action="store_true", help="list server instances too")
    cmd.add_argument("--json", action="store_true")
    cmd.set_defaults(run=_workers)


def _workers(args: argparse.Namespace, client: Client) -> int:
    found = [w for w in client.list_workers() if args.servers or w.kind == "WORKER"]
    if args.json:
        print(dumps([_as_json(w) for w in found]), file=sys.stdout)
        return 0
    print_table(COLUMNS, [_row(w, datetime.now(UTC)) for w in found], sys.stdout)
    return 0


def _row(worker: WorkerInfo, now: datetime) -> Sequence[str]:
    return [
        worker.id,
        worker.host,
        str(worker.pid),
        ",".join(worker.queues) or "-",
        str(worker.concurrency) if worker.kind == "WORKER" else "server",
        str(len(worker.running_task_ids)),
        str(worker.completed),
        str(worker.failed),
        _ago(worker.last_seen, now),
    ]


def _ago(when: datetime | None, now: datetime) -> str:
    """Relative, because the server stamps `last_seen` with its clock, not ours."""
    if when is None:
        return "-"
    return f"{max((now - when).total_seconds(), 0.0):.1f}s ago"


def _as_json(worker: WorkerInfo) -> dict[str, object]:
    return {
        "id": worker.id,
        "kind": worker.kind,
        "host": worker.host,
        "pid": worker.pid,
        "queues": worker.queues,
        "concurrency": worker.concurrency,
        "running_task_ids": worker.running_task_ids,
        "completed": worker.completed,
        "failed": worker.failed,
        "version": worker.version,
        "last_seen": worker.last_seen.isoformat() if worker.last_seen else None,
        "started_at": worker.started_at.isoformat() if worker.started_at else None,
    }
