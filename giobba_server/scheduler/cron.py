"""The cron loop: fire each job when its next execution comes due.

It sleeps until the earliest next execution among active jobs, or until poked by a local
create/resume/trigger, capped by `jobsTimeoutRefresh` so jobs created on other servers are
seen too. It never polls on a fixed tick, so an idle system fires within a few ms.

Every server runs this loop. When another server wins a time's fire lock, the store may
still show that time as next for a moment (the winner has not recorded it yet); this loop
remembers the time it lost, so it sleeps until the time after rather than spinning, and
forgets it after the lock's TTL so a winner that died is covered by a retry.
"""

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from giobba_server.domain.errors import GiobbaError
from giobba_server.domain.job import Job
from giobba_server.services import jobs
from giobba_server.services.context import Deps
from giobba_server.waits import wait_event

log = logging.getLogger("giobba.cron")

BATCH = 500
RETRY = timedelta(seconds=1)  # a fire that failed (a backend blip) is tried again this soon


@dataclass(frozen=True)
class _Handled:
    until: datetime  # due times up to here were fired here or by another server
    retry_at: float  # monotonic: after this, trust the store again


class CronLoop:
    def __init__(self, deps: Deps, cap: float = 60.0) -> None:
        self._deps = deps
        self._cap = cap
        self._poke = asyncio.Event()
        self._handled: dict[str, _Handled] = {}

    def poke(self) -> None:
        self._poke.set()

    async def run(self) -> None:
        backoff = 0.0
        while True:
            self._poke.clear()
            try:
                delay = await self.tick()
                backoff = 0.0
            except (GiobbaError, OSError) as exc:
                backoff = min(max(backoff * 2, 0.1), self._cap)
                log.warning("cron tick failed: %s (next try in %.1fs)", exc, backoff)
                delay = backoff
            await wait_event(self._poke, delay)

    async def tick(self) -> float:
        """Fire what is due; return the seconds until the next due time (capped)."""
        now = self._deps.clock()
        wake = now + timedelta(seconds=self._cap)
        store = jobs.job_store(self._deps)
        self._forget_expired()
        for job in await store.upcoming(wake, BATCH):
            following = await self._visit(job, now)
            if following is not None:
                wake = min(wake, following)
        return max((wake - self._deps.clock()).total_seconds(), 0.0)

    async def _visit(self, job: Job, now: datetime) -> datetime | None:
        due = self._effective_next(job)
        if due is None or due > now:
            return due
        try:
            outcome = await jobs.fire_due(self._deps, job.evolve(next_execution=due), now)
        except GiobbaError as exc:
            log.warning("job %s: fire at %s failed: %s (retrying)", job.id, due, exc)
            return now + RETRY
        retry_at = time.monotonic() + jobs.LOCK_TTL.total_seconds()
        self._handled[job.id] = _Handled(outcome.last_due, retry_at)
        if outcome.runs:
            log.debug("job %s: fired %s -> %s", job.id, outcome.last_due, outcome.runs)
        return outcome.next_execution

    def _forget_expired(self) -> None:
        now = time.monotonic()
        for job_id in [k for k, v in self._handled.items() if v.retry_at < now]:
            del self._handled[job_id]

    def _effective_next(self, job: Job) -> datetime | None:
        """The job's next execution, past any time this loop already handled."""
        handled = self._handled.get(job.id)
        stored = job.next_execution
        if handled is None or stored is None:
            return stored
        if stored > handled.until or time.monotonic() > handled.retry_at:
            del self._handled[job.id]
            return stored
        return job.next_fire(handled.until)
