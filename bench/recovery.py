"""Worker recovery benchmark: how fast a SIGKILLed worker's task runs again, and what the
heartbeats cost a worker holding 100 running tasks. Printed as JSON.

    .venv/bin/python bench/recovery.py                       # embedded, lease 5 s
    .venv/bin/python bench/recovery.py --lease 5s --runs 10 --tasks 100 --seconds 30

Recovery, per run: a fresh worker process starts a 60 s task (max_retries 1), is
SIGKILLed one second in, and a standby worker waits on the same queue. `recovered` is
SIGKILL -> the server has failed the attempt (`worker lost`, back to PENDING);
`restarted` is SIGKILL -> the standby's handler started it. Both include the lease: a
killed worker is indistinguishable from a slow one until its lease runs out.

Heartbeat cost: one worker with `--tasks` slots runs as many sleeping tasks for
`--seconds`; CPU time (user + system, from /proc) of the worker process and of its
heartbeat child process over that window. The share is child / (worker + child); the
worker's own feeder thread (snapshots on change) is included in the worker's figure.
"""

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from giobba_client import TaskState
from tests.e2e.harness import Proc, Stack, stack, wait_until

APP = Path(__file__).resolve().parents[1] / "tests" / "e2e" / "apps" / "workers_app.py"
TICK = os.sysconf("SC_CLK_TCK")


def _config(lease: str) -> str:
    return f"lockDuration: {lease}\nretry:\n  base: 100ms\n  cap: 1s\n"


def _starts(st: Stack, task_id: str) -> list[tuple[float, int]]:
    path = Path(st.env["GIOBBA_TEST_RECORD"])
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts[:2] == [task_id, "start"]:
            found.append((float(parts[3]), int(parts[4])))
    return found


def _one_recovery(st: Stack, run: int) -> tuple[float, float]:
    queue = f"bench-{run}"
    victim = st.start_worker(APP, queue, 1)
    client = st.client()
    task_id = client.add_task("sleepy", {"seconds": [60, 0]}, queue=queue, max_retries=1).id
    began = wait_until(lambda: _starts(st, task_id), 30)[0][0]
    standby = st.start_worker(APP, queue, 1)
    wait_until(lambda: time.time() >= began + 1)
    os.kill(victim.popen.pid, signal.SIGKILL)
    victim.popen.wait()
    killed_wall, killed = time.time(), time.monotonic()
    wait_until(lambda: client.get_task(task_id).state != TaskState.RUNNING, 60, 0.005)
    recovered = time.monotonic() - killed
    second = wait_until(lambda: _starts(st, task_id)[1:], 30, 0.005)[0][0]
    assert client.wait_task(task_id, 30).task.state == TaskState.COMPLETED
    for proc in (victim, standby):
        proc.kill()
    return recovered, second - killed_wall


def recovery(lease: str, runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, stack(Path(tmp), config=_config(lease)) as st:
        st.start_server()
        samples = [_one_recovery(st, i) for i in range(runs)]
    recovered = [r for r, _ in samples]
    restarted = [s for _, s in samples]
    return {
        "lease": lease,
        "runs": runs,
        "recovered_median_s": round(statistics.median(recovered), 3),
        "recovered_max_s": round(max(recovered), 3),
        "restarted_median_s": round(statistics.median(restarted), 3),
        "restarted_max_s": round(max(restarted), 3),
    }


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def heartbeat_cost(lease: str, tasks: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, stack(Path(tmp), config=_config(lease)) as st:
        st.start_server()
        worker: Proc = st.start_worker(APP, "default", tasks)
        client = st.client()
        specs = [{"name": "sleepy", "payload": {"seconds": 3600}} for _ in range(tasks)]
        ids = [t.id for t in client.add_tasks(specs)]
        wait_until(lambda: all(_starts(st, i) for i in ids), 60)
        pid = worker.popen.pid
        child = wait_until(lambda: _children(pid), 10)[0]
        before = _cpu(pid), _cpu(child)
        time.sleep(seconds)  # the measurement window itself, not a wait for a condition
        after = _cpu(pid), _cpu(child)
        worker.kill()
    own, beats = after[0] - before[0], after[1] - before[1]
    return {
        "lease": lease,
        "running_tasks": tasks,
        "window_s": seconds,
        "worker_cpu_s": round(own, 3),
        "heartbeat_process_cpu_s": round(beats, 3),
        "heartbeat_share": round(beats / (own + beats), 3) if own + beats else 0.0,
        "heartbeat_cpu_percent_of_one_core": round(100 * beats / seconds, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lease", default="5s")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--skip-recovery", action="store_true")
    args = parser.parse_args()
    report: dict[str, Any] = {}
    if not args.skip_recovery:
        report["recovery_after_sigkill"] = recovery(args.lease, args.runs)
    report["heartbeat_cost"] = heartbeat_cost(args.lease, args.tasks, args.seconds)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
