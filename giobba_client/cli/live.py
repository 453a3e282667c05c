"""`giobba watch` (the activity feed, live) and `giobba top` (a live screen)."""

import argparse
import json
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TextIO

from giobba_client.client import Client
from giobba_client.models import Activity, Task, TaskState, WorkerInfo

STATES = [s.value for s in TaskState]
CLEAR = "\x1b[H\x1b[2J"
SCAN_LIMIT = 5000  # live tasks read per refresh of `top`


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    watch = sub.add_parser("watch", help="print the activity feed live (resumes on reconnect)")
    watch.add_argument("--queue", action="append", default=[], help="only this queue (repeat)")
    watch.add_argument("--task", action="append", default=[], help="only this task id (repeat)")
    watch.add_argument("--job", default="", help="only runs of this job")
    watch.add_argument("--state", action="append", type=str.upper, choices=STATES, default=[])
    watch.add_argument(
        "--from", dest="cursor", type=int, default=None, help="replay after CURSOR (0: all)"
    )
    watch.add_argument("--count", type=int, default=0, help="exit after N events")
    watch.add_argument("--json", action="store_true", help="one JSON object per line")
    watch.set_defaults(run=_watch)

    top = sub.add_parser("top", help="live screen: queues, throughput, workers, failures")
    top.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    top.add_argument("--once", action="store_true", help="print one snapshot and exit")
    top.set_defaults(run=_top)


# -- watch ------------------------------------------------------------------------------


def format_activity(event: Activity) -> str:
    when = event.time.astimezone(UTC).strftime("%H:%M:%S.%f")[:-3] if event.time else "-"
    new = event.new_state.value if event.new_state else "-"
    # A created task has no old state: "->PENDING" rather than "-->PENDING".
    old = event.old_state.value if event.old_state else ""
    parts = [
        f"{event.cursor:>8}",
        when,
        event.kind.ljust(9),
        event.task_id,
        event.name,
        f"queue={event.queue}",
        f"{old}->{new}",
    ]
    if event.worker_id:
        parts.append(f"worker={event.worker_id}")
    if event.attempt:
        parts.append(f"attempt={event.attempt}")
    if event.error:
        parts.append(f"error={event.error[:200]!r}")
    return " ".join(parts)


def activity_json(event: Activity) -> dict[str, object]:
    return {
        "cursor": event.cursor,
        "time": event.time.isoformat() if event.time else None,
        "kind": event.kind,
        "task_id": event.task_id,
        "name": event.name,
        "queue": event.queue,
        "old_state": event.old_state.value if event.old_state else None,
        "new_state": event.new_state.value if event.new_state else None,
        "worker_id": event.worker_id,
        "attempt": event.attempt,
        "error": event.error,
        "job_id": event.job_id,
    }


def _watch(args: argparse.Namespace, client: Client) -> int:
    # A server that is not there at the start fails the command at once, as every other
    # command does; only a stream that was open is resumed (the SDK retries for ever).
    client.list_workers()
    events = client.watch_activities(
        args.cursor,
        queues=args.queue,
        task_ids=args.task,
        job_id=args.job,
        states=args.state,
        resume=True,
    )
    for seen, event in enumerate(events, 1):
        line = json.dumps(activity_json(event), ensure_ascii=False) if args.json else None
        print(line or format_activity(event), flush=True)
        if args.count and seen >= args.count:
            events.close()
            break
    return 0


# -- top --------------------------------------------------------------------------------


@dataclass
class QueueRow:
    ready: Counter[int] = field(default_factory=Counter)  # by priority
    delayed: Counter[int] = field(default_factory=Counter)
    held: Counter[int] = field(default_factory=Counter)
    running: Counter[int] = field(default_factory=Counter)


@dataclass
class Snapshot:
    queues: dict[str, QueueRow]
    truncated: bool
    workers: list[WorkerInfo]
    failures: list[Task]
    completed_per_s: float
    failed_per_s: float
    taken_at: datetime


class Rates:
    """Completions and failures per second over the last `window` seconds, from the feed
    (followed in a thread of its own; the first screen estimates from the record)."""

    def __init__(self, client: Client, window: float = 10.0) -> None:
        self._window = window
        self._ends: deque[tuple[float, str]] = deque()
        self._lock = threading.Lock()
        self._since = time.monotonic()
        self._client = client
        self.following = False

    def follow(self) -> None:
        thread = threading.Thread(target=self._run, name="giobba-top-feed", daemon=True)
        thread.start()

    def _run(self) -> None:
        self.following = True
        try:
            for event in self._client.watch_activities(None, resume=True):
                if event.new_state in (TaskState.COMPLETED, TaskState.FAILED, TaskState.KILLED):
                    with self._lock:
                        self._ends.append((time.monotonic(), event.new_state.value))
        except Exception:  # the screen goes on without rates
            self.following = False

    def per_second(self) -> tuple[float, float]:
        now = time.monotonic()
        with self._lock:
            while self._ends and self._ends[0][0] < now - self._window:
                self._ends.popleft()
            counts = Counter(state for _, state in self._ends)
        span = max(min(self._window, now - self._since), 1.0)
        return counts["COMPLETED"] / span, (counts["FAILED"] + counts["KILLED"]) / span


def _live_tasks(client: Client) -> tuple[list[Task], bool]:
    tasks: list[Task] = []
    for state in (TaskState.RUNNING, TaskState.PENDING):
        token = ""
        while len(tasks) < SCAN_LIMIT:
            page = client.list_tasks(states=[state], page_size=1000, page_token=token)
            tasks.extend(page.tasks)
            token = page.next_page_token
            if not token:
                break
        else:
            return tasks, True
    return tasks, False


def _recent_rate(client: Client, window: timedelta) -> tuple[float, float]:
    """Ends per second over `window`, from the newest terminal tasks (first screen)."""
    now = datetime.now(UTC)
    rates = []
    for states in ([TaskState.COMPLETED], [TaskState.FAILED, TaskState.KILLED]):
        page = client.list_tasks(states=states, page_size=1000)
        recent = [t for t in page.tasks if t.completed_at and now - t.completed_at <= window]
        rates.append(len(recent) / window.total_seconds())
    return rates[0], rates[1]


def snapshot(client: Client, rates: Rates | None) -> Snapshot:
    tasks, truncated = _live_tasks(client)
    queues: dict[str, QueueRow] = {}
    for task in tasks:
        row = queues.setdefault(task.queue, QueueRow())
        if task.state == TaskState.RUNNING:
            row.running[task.priority] += 1
        elif task.pending_reason == "READY":
            row.ready[task.priority] += 1
        elif task.pending_reason in ("ETA", "RETRY"):
            row.delayed[task.priority] += 1
        else:
            row.held[task.priority] += 1
    if rates is not None and rates.following:
        completed, failed = rates.per_second()
    else:
        completed, failed = _recent_rate(client, timedelta(seconds=60))
    failures = client.list_tasks(states=["FAILED", "KILLED"], page_size=5).tasks
    workers = [w for w in client.list_workers() if w.kind == "WORKER"]
    return Snapshot(queues, truncated, workers, failures, completed, failed, datetime.now(UTC))


def _by_priority(counts: Counter[int]) -> str:
    if not counts:
        return "0"
    detail = " ".join(f"p{p}:{n}" for p, n in sorted(counts.items(), reverse=True))
    return f"{sum(counts.values())} ({detail})"


def render(snap: Snapshot, out: TextIO) -> None:
    print(
        f"giobba top  {snap.taken_at:%Y-%m-%d %H:%M:%S}Z   "
        f"throughput: {snap.completed_per_s:.1f} completed/s, {snap.failed_per_s:.1f} failed/s",
        file=out,
    )
    print("", file=out)
    rows: list[Sequence[str]] = [
        [
            name,
            _by_priority(row.ready),
            _by_priority(row.delayed),
            _by_priority(row.held),
            _by_priority(row.running),
        ]
        for name, row in sorted(snap.queues.items())
    ]
    _table(("queue", "ready", "delayed", "held", "running"), rows, out)
    if not rows:
        print("(no pending or running tasks)", file=out)
    if snap.truncated:
        print(f"(first {SCAN_LIMIT} live tasks counted)", file=out)
    print("", file=out)
    print(f"workers: {len(snap.workers)}", file=out)
    _table(
        ("worker", "queues", "busy", "completed", "failed"),
        [
            [
                w.id,
                ",".join(w.queues),
                f"{len(w.running_task_ids)}/{w.concurrency}",
                str(w.completed),
                str(w.failed),
            ]
            for w in snap.workers
        ],
        out,
    )
    print("", file=out)
    print("recent failures:", file=out)
    for task in snap.failures:
        when = f"{task.completed_at:%H:%M:%S}" if task.completed_at else "-"
        print(f"  {when} {task.id} {task.name} {task.state}: {task.error[:80]}", file=out)
    if not snap.failures:
        print("  (none)", file=out)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    print("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)), file=out)
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out)


def _top(args: argparse.Namespace, client: Client) -> int:
    out = sys.stdout
    if args.once:
        render(snapshot(client, None), out)
        return 0
    rates = Rates(client)
    rates.follow()
    tty = out.isatty()
    pause = threading.Event()
    while True:
        snap = snapshot(client, rates)
        if tty:
            out.write(CLEAR)
        render(snap, out)
        if not tty:
            print("", file=out)
        out.flush()
        pause.wait(max(args.interval, 0.2))
