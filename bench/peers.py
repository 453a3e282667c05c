"""Giobba beside other Python task queues, measured in the same run on the same machine.

    make bench-peers
    .venv/bin/python bench/peers.py --tasks 2000 --systems giobba-redis-sqlite,celery-redis

The same workload for each system: `--tasks` no-op tasks enqueued first (Giobba
`add_tasks` and RQ `enqueue_many` in 500s; Celery, which has no batch send, `apply_async`
on one shared producer), then drained by ONE worker process started afterwards. Giobba
and Celery run 8 threads; RQ has no thread concurrency. Each system gets its own fresh
loopback redis-server.

- enqueue tasks/s: the enqueue calls alone, client already built.
- drain tasks/s: from the worker's start (process spawn, so its start-up counts) until
  every task is known complete, watched every 20 ms at a small constant cost: Celery's
  result records and RQ's job hashes read from Redis, one by one in enqueue order;
  Giobba's ListTasks until no task is PENDING or RUNNING. Every task is then checked
  through the system's own API (done, once, with the no-op's result).
- steady tasks/s: first to last completion on the systems' own timestamps (Giobba
  `completed_at`, Celery `date_done`, RQ `ended_at`), so worker start-up is left out.

Ratios are this system's figure over Giobba's (Redis + SQLite, and embedded).

Celery and RQ are never dependencies of the project: they live in `.venv-peers` (made
once, exact pins below) and run as subprocesses with its python: bench/peers_celery.py
and bench/peers_rq.py hold their tasks, enqueue and verify.
"""

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import redis as redis_py

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The Giobba side is bench/run.py's own, so these figures match `make bench`'s.
from run import BATCH, _backend, _enqueue, _redis_calls, _wait_all

from giobba_client import Client, TaskState
from tests.e2e.harness import HANDLERS, REPO, Proc, wait_until
from tests.support.services import RedisServer

BENCH = Path(__file__).resolve().parent
CONCURRENCY = 8
PEERS_VENV = REPO / ".venv-peers"
PEERS_BIN = PEERS_VENV / "bin"
# Exact versions, transitive ones too (a `pip freeze` of the resolved set), so that every
# run measures the same peers; change them on purpose, and the venv is rebuilt.
PEER_PINS = (
    "celery[redis]==5.7.0",
    "rq==3.0.0",
    "redis==8.2.0",
    "kombu==5.7.0",
    "amqp==5.4.2",
    "billiard==4.3.2",
    "click==8.5.1",
    "click-didyoumean==0.3.1",
    "click-plugins==1.1.1.2",
    "click-repl==0.4.1",
    "croniter==7.0.0",
    "packaging==26.3",
    "prompt_toolkit==3.0.53",
    "python-dateutil==2.9.0.post0",
    "six==1.17.0",
    "typing_extensions==4.16.0",
    "tzlocal==5.4.5",
    "vine==5.1.0",
    "wcwidth==0.9.4",
)
WINDOW = 100  # records per read: the watcher stays cheap beside the worker
POLL_S = 0.02  # the harness's own poll interval; bounds the end-of-drain error
RATIO_KEYS = ("enqueue_tasks_per_s", "drain_tasks_per_s", "steady_tasks_per_s")

Reader = Callable[[redis_py.Redis, list[str]], tuple[list[float | None], int]]


# --- the peers' venv ---------------------------------------------------------------


def ensure_peers_venv() -> None:
    """Create `.venv-peers` once per pin set; later runs reuse it as it is."""
    digest = hashlib.sha256("\n".join(PEER_PINS).encode()).hexdigest()[:12]
    stamp = PEERS_VENV / f".installed-{digest}"
    if stamp.is_file():
        return
    print(f"creating {PEERS_VENV} with {' '.join(PEER_PINS[:3])}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEERS_VENV)], check=True)
    pip = [str(PEERS_BIN / "python"), "-m", "pip", "install", "-q", "--no-input"]
    subprocess.run([*pip, *PEER_PINS], check=True)
    stamp.touch()


def _peer_env(redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # bench/ on the path: the workers import peers_celery / peers_rq from there.
    env.update(PEERS_REDIS_URL=redis_url, PYTHONPATH=str(BENCH), PYTHONUNBUFFERED="1")
    return env


# --- reading completion records straight from each peer's Redis ---------------------


def _celery_done(client: redis_py.Redis, keys: list[str]) -> tuple[list[float | None], int]:
    """Celery's result record: JSON with `status` and `date_done` (ISO 8601, UTC)."""
    raws: list[bytes | str | None] = client.mget(keys)
    times: list[float | None] = []
    for key, raw in zip(keys, raws, strict=True):
        meta = json.loads(raw) if raw is not None else {"status": "PENDING"}
        if meta["status"] in ("FAILURE", "REVOKED"):
            raise AssertionError(f"{key}: {meta}")
        done = meta["status"] == "SUCCESS"
        times.append(datetime.fromisoformat(meta["date_done"]).timestamp() if done else None)
    return times, 1


def _rq_done(client: redis_py.Redis, keys: list[str]) -> tuple[list[float | None], int]:
    """RQ's job hash: `status` and `ended_at` (`%Y-%m-%dT%H:%M:%S.%fZ`, UTC)."""
    pipe = client.pipeline(transaction=False)  # no MULTI/EXEC to skew the command count
    for key in keys:
        pipe.hmget(key, ["status", "ended_at"])
    times: list[float | None] = []
    for key, (status, ended) in zip(keys, pipe.execute(), strict=True):
        if status in (b"failed", b"stopped", b"canceled"):
            raise AssertionError(f"{key}: {status!r}")
        if status != b"finished":
            times.append(None)
            continue
        at = datetime.strptime(ended.decode(), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        times.append(at.timestamp())
    return times, len(keys)


@dataclass(frozen=True)
class Peer:
    module: str  # bench/<module>.py: the task, enqueue and verify
    worker: Callable[[str], list[str]]  # Redis URL -> the worker's argv
    read: Reader
    exits_when_idle: bool  # RQ's --burst: its exit is part of a clean run
    how: str  # what runs, and what is stored per task


def _celery_worker(url: str) -> list[str]:
    """The URL reaches the app through PEERS_REDIS_URL; WARNING is Celery's default level
    (RQ's is INFO, a few lines per job: both left as users get them)."""
    return [
        str(PEERS_BIN / "celery"), "-A", "peers_celery", "worker",
        "--pool", "threads", "--concurrency", str(CONCURRENCY), "--loglevel", "WARNING",
    ]  # fmt: skip


def _rq_worker(worker_class: str) -> Callable[[str], list[str]]:
    def argv(url: str) -> list[str]:
        return [str(PEERS_BIN / "rq"), "worker", "--burst", "--url", url,
                "--worker-class", worker_class, "default"]  # fmt: skip

    return argv


PEERS = {
    "celery-redis": Peer(
        "peers_celery",
        _celery_worker,
        _celery_done,
        exits_when_idle=False,
        how="celery worker --pool threads -c 8, Redis broker + Redis result backend "
        "(result JSON with state and date_done per task, early ack, Celery defaults)",
    ),
    # SimpleWorker runs each job in the worker process, as Giobba's and Celery's thread
    # pools do; RQ's default Worker forks a child per job (rq-fork-redis measures it).
    "rq-redis": Peer(
        "peers_rq",
        _rq_worker("rq.worker.SimpleWorker"),
        _rq_done,
        exits_when_idle=True,
        how="rq worker --burst --worker-class rq.worker.SimpleWorker: one job at a time in "
        "the worker process; job hash, registries and result stream in Redis",
    ),
    "rq-fork-redis": Peer(
        "peers_rq",
        _rq_worker("rq.worker.Worker"),
        _rq_done,
        exits_when_idle=True,
        how="rq worker --burst (RQ's default Worker: a forked child per job, one at a time)",
    ),
}
GIOBBA = {"giobba-embedded": "embedded", "giobba-redis-sqlite": "redis-sqlite"}
DEFAULT_SYSTEMS = "giobba-embedded,giobba-redis-sqlite,celery-redis,rq-redis"


# --- measuring ----------------------------------------------------------------------


def _figures(
    tasks: int, enqueue_s: float, drain_s: float, done: list[float], began_wall: float
) -> dict[str, Any]:
    span = max(done) - min(done)
    return {
        "tasks": tasks,
        "enqueue_tasks_per_s": round(tasks / enqueue_s, 1),
        "drain_tasks_per_s": round(tasks / drain_s, 1),
        "steady_tasks_per_s": round((len(done) - 1) / span, 1),
        "drain_s": round(drain_s, 3),
        # Worker start-up (process, imports, connecting) until the first task was done.
        "first_done_after_s": round(min(done) - began_wall, 3),
    }


def _giobba_completions(client: Client, ids: list[str]) -> list[float]:
    """Every task through GetTask: completed, on its first attempt, with `{}`; returns
    the completion times."""
    done: list[float] = []
    for task_id in ids:
        task = client.get_task(task_id)
        once = task.state == TaskState.COMPLETED and task.attempts == 1 and task.result == {}
        if not once or task.completed_at is None:
            raise AssertionError(f"not completed once with the no-op's result: {task}")
        done.append(task.completed_at.timestamp())
    return done


def run_giobba(system: str, tasks: int, timeout: float) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix=f"giobba-peers-{system}-") as tmp,
        _backend(GIOBBA[system], Path(tmp)) as (st, redis),
    ):
        st.start_server()
        client = st.client()
        before = _redis_calls(redis)
        ids, enqueue_s = _enqueue(client, tasks)
        began, began_wall = time.monotonic(), time.time()
        st.start_worker(HANDLERS, "default", CONCURRENCY)
        _wait_all(client, [], timeout)
        drain_s = time.monotonic() - began
        # Before the GetTask checks, which are not part of the drain.
        commands = _redis_calls(redis) - before
        out = _figures(tasks, enqueue_s, drain_s, _giobba_completions(client, ids), began_wall)
        if redis is not None:
            out["redis_commands_per_task"] = round(commands / tasks, 1)
        out["how"] = (
            f"giobba worker --concurrency {CONCURRENCY} (workers/python/handlers.py noop) "
            f"against giobba serve ({GIOBBA[system]}): task row, state changes and result "
            "in the repository"
        )
        return {"system": system, **out}


class _Watch:
    """Walks a peer's completion records in enqueue order, `WINDOW` at a time, so each
    poll is one cheap read; done once every task has been seen complete."""

    def __init__(self, peer: Peer, client: redis_py.Redis, keys: list[str], worker: Proc):
        self.peer, self.client, self.keys, self.worker = peer, client, keys, worker
        self.done: list[float] = []
        self.commands = 0  # ours, taken out of the peer's Redis command count

    def __call__(self) -> bool:
        # Read the exit before the records: a worker that exited before a read that still
        # misses tasks has lost them (an exit after the read is simply seen next poll).
        exited = self.worker.popen.poll() is not None
        while len(self.done) < len(self.keys):
            window = self.keys[len(self.done) : len(self.done) + WINDOW]
            times, cost = self.peer.read(self.client, window)
            self.commands += cost
            ready = times.index(None) if None in times else len(times)
            self.done += [t for t in times[:ready] if t is not None]
            if ready < len(times):
                if exited:
                    missing = len(self.keys) - len(self.done)
                    raise AssertionError(
                        f"worker exited, {missing} not done:\n{self.worker.text()}"
                    )
                return False
        return True


def _peer_cli(peer: Peer, env: dict[str, str], *args: str) -> dict[str, Any]:
    """Run bench/<module>.py with the peers' python; its last stdout line is JSON."""
    argv = [str(PEERS_BIN / "python"), str(BENCH / f"{peer.module}.py"), *args]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{peer.module} {args[0]} failed ({done.returncode}):\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def _drain(
    peer: Peer, env: dict[str, str], keys: list[str], tmp: Path, timeout: float
) -> tuple[float, _Watch]:
    """Start the worker, watch every task complete, stop the worker (RQ's burst worker
    stops by itself: its clean exit is checked)."""
    redis_url = env["PEERS_REDIS_URL"]
    client = redis_py.Redis.from_url(redis_url)
    worker = Proc(peer.worker(redis_url), env, tmp / "worker.log")
    try:
        watch = _Watch(peer, client, keys, worker)
        wait_until(watch, timeout, interval=POLL_S, what=f"every {peer.module} task to complete")
        ended = time.monotonic()
        if peer.exits_when_idle:
            wait_until(lambda: worker.popen.poll() is not None, 60, what="the burst worker's exit")
        code = worker.stop()
    finally:
        worker.kill()  # only does something when the watch failed
        client.close()
    if code != 0:
        raise AssertionError(f"{peer.module} worker exited {code}:\n{worker.text()}")
    return ended, watch


def run_peer(system: str, tasks: int, timeout: float) -> dict[str, Any]:
    peer = PEERS[system]
    with (
        tempfile.TemporaryDirectory(prefix=f"giobba-peers-{system}-") as tmp,
        RedisServer() as redis,
    ):
        env = _peer_env(redis.url)
        ids_file = Path(tmp) / "ids.json"
        before = _redis_calls(redis)
        sent = _peer_cli(peer, env, "enqueue", "--tasks", str(tasks), "--batch", str(BATCH),
                         "--out", str(ids_file))  # fmt: skip
        keys: list[str] = json.loads(ids_file.read_text())["keys"]
        assert sent["enqueued"] == tasks == len(keys), sent
        began, began_wall = time.monotonic(), time.time()
        ended, watch = _drain(peer, env, keys, Path(tmp), timeout)
        # Counted once the burst worker is gone / the Celery worker stopped: both idle then.
        commands = _redis_calls(redis) - before - watch.commands
        verified = _peer_cli(peer, env, "verify", "--ids", str(ids_file))
        assert verified["verified"] == tasks, verified
        out = _figures(tasks, sent["seconds"], ended - began, watch.done, began_wall)
        out["redis_commands_per_task"] = round(commands / tasks, 1)
        return {"system": system, **out, "how": peer.how}


# --- the report -----------------------------------------------------------------------


def _ratios(results: list[dict[str, Any]]) -> None:
    """Add `vs_<giobba system>`: this system's figure over that Giobba's, per measure."""
    by_name = {r["system"]: r for r in results}
    for base_name in ("giobba-redis-sqlite", "giobba-embedded"):
        base = by_name.get(base_name)
        for result in results:
            if base is not None and result is not base:
                result["vs_" + base_name.replace("-", "_")] = {
                    key: round(result[key] / base[key], 2) for key in RATIO_KEYS
                }


def _versions() -> dict[str, str]:
    server = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=True
    ).stdout
    return {
        "python": platform.python_version(),
        "giobba": version("giobba"),
        "redis-server": server.split("v=")[1].split()[0],
        **dict(pin.replace("[redis]", "").split("==") for pin in PEER_PINS[:4]),
    }


@contextmanager
def _load_watch(out: dict[str, Any]) -> Iterator[None]:
    """Record the machine's load around the run: other work on the CPUs skews ratios."""
    out["loadavg_1_5_15_before"] = [round(x, 2) for x in os.getloadavg()]
    yield
    out["loadavg_1_5_15_after"] = [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--systems", default=DEFAULT_SYSTEMS,
                        help=f"comma-separated, from {', '.join([*GIOBBA, *PEERS])}")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=600, help="per drain, seconds")
    args = parser.parse_args()
    systems = args.systems.split(",")
    if unknown := set(systems) - set(GIOBBA) - set(PEERS):
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    if set(systems) & set(PEERS):
        ensure_peers_venv()
    host: dict[str, Any] = {"cpus": os.cpu_count()}
    with _load_watch(host):
        results = [
            (run_giobba if s in GIOBBA else run_peer)(s, args.tasks, args.timeout) for s in systems
        ]
    _ratios(results)
    report = {"when": datetime.now(UTC).isoformat(), "host": host, "versions": _versions()}
    print(json.dumps({**report, "results": results}, indent=2))


if __name__ == "__main__":
    main()
