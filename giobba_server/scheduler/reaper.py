"""Timers for what nobody asks about: leases that expired and tasks that expired.

The loop sleeps until the broker's earliest deadline (a lease or an expiry), or until a
local change pokes it, capped so deadlines set by other servers are seen too. The cap is
never longer than one lease: a lease taken while the reaper sleeps ends at least a lease
from now, so the reaper is awake and timing it before it can expire.
Expired leases are therefore recovered at their deadline (plus one sweep), not at the
next poll.
"""

import asyncio
import logging

from giobba_server.domain.clock import now_ms
from giobba_server.domain.errors import GiobbaError
from giobba_server.services.context import Deps
from giobba_server.services.recovery import reconcile
from giobba_server.services.transitions import EXPIRED, WORKER_LOST, fail_attempt, revoke_pending
from giobba_server.waits import wait_event

log = logging.getLogger("giobba.reaper")

BATCH = 500


class Reaper:
    def __init__(self, deps: Deps, cap: float = 5.0) -> None:
        self._deps = deps
        self._cap = cap
        self._poke = asyncio.Event()
        self._epoch = ""

    def poke(self) -> None:
        self._poke.set()

    async def run(self) -> None:
        backoff = 0.0
        while True:
            # Cleared before the sweep: a poke that lands during it wakes the next wait.
            self._poke.clear()
            try:
                await self.sweep()
                delay = await self._next_delay()
                backoff = 0.0
            except (GiobbaError, OSError) as exc:
                # Everything that touches a backend is in here: the reaper outlives any
                # outage (it is the only thing that recovers leases and restores a broker
                # that came back empty).
                backoff = min(max(backoff * 2, 0.1), self._cap)
                log.warning("reaper sweep failed: %s (next try in %.1fs)", exc, backoff)
                delay = backoff
            await wait_event(self._poke, delay)

    async def _next_delay(self) -> float:
        delay = min(self._cap, self._deps.settings.lease.total_seconds())
        deadline = await self._deps.broker.next_deadline_ms()
        if deadline is not None:
            delay = min(delay, max((deadline - now_ms()) / 1000, 0.0))
        return delay

    async def _check_epoch(self) -> None:
        """Reconcile when the broker lost its state while this server ran (Redis flushed
        or restarted empty): the repository still holds every live task."""
        epoch = await self._deps.broker.epoch()
        if self._epoch and epoch != self._epoch:
            log.warning("broker state was lost (new epoch): restoring live tasks")
            await reconcile(self._deps)
        self._epoch = epoch

    async def sweep(self) -> int:
        """One pass; returns how many tasks it moved."""
        await self._check_epoch()
        moved = 0
        for lost in await self._deps.broker.expired_leases(BATCH):
            task = await self._deps.repo.get(lost.ref.id)
            if task is None:
                await self._deps.broker.finish(lost.ref, lost.token)
                continue
            if await fail_attempt(self._deps, task, lost.token, WORKER_LOST) is not None:
                log.info("task %s: lease of %s expired", task.id, lost.worker_id)
                moved += 1
        for ref in await self._deps.broker.due_expiries(BATCH):
            task = await self._deps.repo.get(ref.id)
            if task is None:  # unknown to the record: drop it, or it stays due forever
                await self._deps.broker.revoke(ref)
                continue
            if await revoke_pending(self._deps, task, EXPIRED):
                moved += 1
        return moved
