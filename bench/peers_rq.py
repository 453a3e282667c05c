"""RQ side of bench/peers.py (runs with `.venv-peers/bin/python`).

The worker imports `peers_rq.noop` (`rq worker --path bench`); jobs name it by that
dotted path, since `enqueue` runs with this file as __main__. Redis holds everything: the
queue, each job's hash (status, timestamps) and its stored result.
"""

import os

import peers_cli
from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus

QUEUE = "default"
# Above RQ's 500 s default so that no result can expire before `verify` reads it.
RESULT_TTL = 3600


def noop(i: int) -> dict[str, int]:
    """Does nothing, like Giobba's `noop` handler; RQ stores its `{}`."""
    return {}


def _connection() -> Redis:
    return Redis.from_url(os.environ["PEERS_REDIS_URL"])


def enqueue(tasks: int, batch: int) -> list[str]:
    """`enqueue_many` per batch: one Redis pipeline per call."""
    queue = Queue(QUEUE, connection=_connection())
    ids: list[str] = []
    for at in range(0, tasks, batch):
        datas = [
            Queue.prepare_data("peers_rq.noop", (i,), result_ttl=RESULT_TTL)
            for i in range(at, min(at + batch, tasks))
        ]
        ids += [job.id for job in queue.enqueue_many(datas)]
    return ids


def record_key(job_id: str) -> str:
    return Job.key_for(job_id)


def verify(ids: list[str]) -> list[str]:
    problems = []
    for job_id, job in zip(ids, Job.fetch_many(ids, connection=_connection()), strict=True):
        if job is None:
            problems.append(f"{job_id}: missing")
        elif job.get_status() != JobStatus.FINISHED or job.return_value() != {}:
            problems.append(f"{job_id}: {job.get_status()} {job.return_value()!r}")
    return problems


if __name__ == "__main__":
    peers_cli.main(enqueue, record_key, verify)
