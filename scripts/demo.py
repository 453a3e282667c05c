"""`make demo`: Giobba for real on its embedded default, in about twenty seconds.

Starts `giobba serve` (in-process broker + SQLite under ./.giobba/) and a worker with the
reference handlers, submits a small workload that touches every feature, prints the
activity feed live, then a table of final states and timings, and stops everything.
"""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from giobba_client import Activity, AsyncClient, Task, TaskState

REPO = Path(__file__).resolve().parents[1]
STATE_DIR = REPO / ".giobba"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)


def _wait_for(log: Path, needle: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while needle not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"demo: process did not start; see {log}\n{log.read_text()[-2000:]}")
        threading.Event().wait(0.05)


async def _submit(client: AsyncClient) -> dict[str, Task]:
    now = datetime.now(UTC)
    tasks: dict[str, Task] = {}

    async def add(label: str, name: str, payload: dict[str, object], **options: object) -> Task:
        task = await client.add_task(name, payload, **options)
        tasks[label] = task
        return task

    # One batch (AddTasks, all or nothing): the worker's 2 slots take priorities 9 and 5
    # first, then 3, then 1 — whatever the submission order.
    batch = [{"name": "process", "payload": {"report": p}, "priority": p} for p in (1, 5, 9, 3)]
    for task in await client.add_tasks(batch):
        tasks[f"process p{task.priority}"] = task
    await add("eta +4s", "echo", {"hello": "later"}, eta=now + timedelta(seconds=4))
    await add("manual", "echo", {"waits": "for auto"}, manual=True)
    parent = await add("parent", "sleep", {"seconds": 1})
    await add("child", "echo", {"after": "parent"}, parent_id=parent.id)
    await add("fail x3", "fail", {"message": "disk on fire 🔥"}, max_retries=2)
    await add("revoked", "echo", {}, eta=now + timedelta(seconds=30))
    await add("expired", "echo", {}, manual=True, expires_at=now + timedelta(seconds=3))
    return tasks


def _line(event: Activity, labels: dict[str, str]) -> str:
    stamp = (event.time or datetime.now(UTC)).strftime("%H:%M:%S.%f")[:-3]
    old = event.old_state or "-"
    extra = f"  ({event.error})" if event.error and event.new_state != TaskState.RUNNING else ""
    what = f"{old:>9} -> {event.new_state}" if old != event.new_state else f"{event.kind:>22}"
    return f"  {stamp}  {labels.get(event.task_id, event.task_id[:8]):<12} {what}{extra}"


async def _follow(client: AsyncClient, labels: dict[str, str], finished: set[str]) -> None:
    async for event in client.watch_activities(from_cursor=0):
        if event.task_id not in labels:
            continue
        print(_line(event, labels), flush=True)
        if event.new_state is not None and event.new_state.terminal:
            finished.add(event.task_id)
            if finished >= set(labels):
                return


def _table(tasks: list[tuple[str, Task]]) -> None:
    print(
        f"\n  {'TASK':<12} {'HANDLER':<8} {'PRIO':>4}  {'STATE':<9} {'TRIES':>5} "
        f"{'WAITED':>7} {'RAN':>6}  ERROR"
    )
    for label, task in tasks:
        waited = ran = ""
        if task.started_at and task.created_at:
            waited = f"{(task.started_at - task.created_at).total_seconds():.2f}s"
        if task.started_at and task.completed_at:
            ran = f"{(task.completed_at - task.started_at).total_seconds():.2f}s"
        print(
            f"  {label:<12} {task.name:<8} {task.priority:>4}  {task.state:<9} "
            f"{task.attempts:>5} {waited:>7} {ran:>6}  {task.error}"
        )


async def _scenario(address: str) -> None:
    async with AsyncClient(address) as client:
        tasks = await _submit(client)
        labels = {t.id: label for label, t in tasks.items()}
        print(f"submitted {len(tasks)} tasks; following the activity feed:\n", flush=True)
        finished: set[str] = set()
        follower = asyncio.create_task(_follow(client, labels, finished))
        await asyncio.sleep(1.5)
        await client.revoke_task(tasks["revoked"].id, "changed my mind")
        await asyncio.sleep(1.0)
        await client.auto_task(tasks["manual"].id)
        await asyncio.wait_for(follower, 60)
        final = [(label, await client.get_task(t.id)) for label, t in tasks.items()]
        _table(final)
        bad = [label for label, t in final if not t.state.terminal]
        if bad:
            sys.exit(f"demo: not finished: {bad}")
        ok = sum(t.state == TaskState.COMPLETED for _, t in final)
        print(f"\n  {ok} completed, {len(final) - ok} failed/revoked as intended.")


def main() -> None:
    STATE_DIR.mkdir(exist_ok=True)
    db = STATE_DIR / "demo.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    address = f"127.0.0.1:{_free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIOBBA_")}
    env.update(GIOBBA_DATABASE_URL=f"sqlite:///{db}", PYTHONUNBUFFERED="1")
    cli = [sys.executable, "-m", "giobba_client.cli.main", "--server", address]
    server_log, worker_log = STATE_DIR / "demo-server.log", STATE_DIR / "demo-worker.log"
    print(f"starting giobba serve on {address} (embedded: in-process broker, SQLite {db})")
    server = _start([*cli, "serve", "--listen", address], env, server_log)
    worker = None
    try:
        _wait_for(server_log, "listening", server)
        handlers = str(REPO / "workers" / "python" / "handlers.py")
        print("starting giobba worker --app workers/python/handlers.py --concurrency 2")
        worker = _start([*cli, "worker", "--app", handlers, "--concurrency", "2"], env, worker_log)
        _wait_for(worker_log, "serving", worker)
        asyncio.run(_scenario(address))
    finally:
        for proc in (worker, server):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
        print(f"\nstopped the worker and the server (logs in {STATE_DIR}/)")


if __name__ == "__main__":
    main()
