"""Ports for cron jobs: where jobs are kept, and the lock that lets one server fire a time.

The store is the durable record of jobs; its `save` is version-guarded so a write based on
a stale read is refused rather than undoing a pause or a newer fire. It is not what makes a
fire happen once: a MongoDB-wire store without atomic conditional updates (FerretDB) may
let two racing writes through. That is the FireLock's job (Redis SET NX in production),
with the run's deterministic task id as the backstop.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from giobba_server.domain.job import Job


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    next_token: str


class JobRepository(Protocol):
    async def insert(self, job: Job) -> None:
        """AlreadyExists if the id exists."""

    async def get(self, job_id: str) -> Job | None: ...

    async def page(self, limit: int, token: str) -> JobPage:
        """Oldest first (by created_at, then id); `token` from a previous page."""

    async def save(self, job: Job) -> bool:
        """Write the job if the stored version is `job.version - 1`; False otherwise
        (changed meanwhile, or deleted)."""

    async def delete(self, job_id: str) -> bool:
        """True if a job was deleted."""

    async def upcoming(self, until: datetime, limit: int) -> Sequence[Job]:
        """Active jobs with next_execution <= `until`, earliest first."""

    async def close(self) -> None: ...


class FireLock(Protocol):
    async def acquire(self, key: str, ttl_ms: int) -> bool:
        """True for exactly one caller per key until the key expires."""

    async def close(self) -> None: ...


def fire_key(job_id: str, fire_time: datetime) -> str:
    return f"giobba:cron:{job_id}:{int(fire_time.timestamp() * 1000)}"
