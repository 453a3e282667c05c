"""In-process broker: the embedded default. One event loop, so every method body (which
never awaits mid-way) is an atomic step, just as each Lua script is on Redis."""

import asyncio
import heapq
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from giobba_server.domain.clock import now_ms
from giobba_server.domain.ports import (
    CancelReason,
    Claim,
    ClaimBatch,
    ExpiredLease,
    LiveEntry,
    Moved,
    Renewal,
    Revoked,
    RevokeOutcome,
    TaskRef,
)
from giobba_server.domain.task import Hold

READY, DELAYED, HELD, RUNNING = "ready", "delayed", "held", "running"


@dataclass
class _Record:
    id: str
    queue: str
    priority: int
    seq: int
    eta_ms: int
    expires_ms: int | None
    holds: set[Hold]
    version: int
    where: str = HELD
    placement: int = 0  # heap entries from an older placement are ignored
    token: str = ""
    worker_id: str = ""
    deadline_ms: int = 0


@dataclass
class _Queue:
    ready: list[tuple[int, int, str, int]] = field(default_factory=list)  # -prio, seq, id, pl
    delayed: list[tuple[int, str, int]] = field(default_factory=list)  # eta, id, placement


class MemoryBroker:
    def __init__(self, clock: Callable[[], int] = now_ms) -> None:
        self._clock = clock
        self._records: dict[str, _Record] = {}
        self._queues: dict[str, _Queue] = {}
        self._expiries: list[tuple[int, str]] = []
        self._leased: dict[str, _Record] = {}
        self._cancels: dict[str, dict[str, CancelReason]] = {}
        self._changed = asyncio.Condition()
        self._epoch = secrets.token_hex(8)  # in-process state dies with the process

    # -- placement ---------------------------------------------------------------------

    def _queue(self, name: str) -> _Queue:
        return self._queues.setdefault(name, _Queue())

    def _place(self, rec: _Record) -> None:
        """Put a pending record where it belongs: held, delayed or ready."""
        rec.placement += 1
        rec.token, rec.worker_id, rec.deadline_ms = "", "", 0
        self._leased.pop(rec.id, None)
        queue = self._queue(rec.queue)
        if rec.holds:
            rec.where = HELD
        elif rec.eta_ms > self._clock():
            rec.where = DELAYED
            heapq.heappush(queue.delayed, (rec.eta_ms, rec.id, rec.placement))
        else:
            rec.where = READY
            heapq.heappush(queue.ready, (-rec.priority, rec.seq, rec.id, rec.placement))
        if rec.expires_ms is not None:
            heapq.heappush(self._expiries, (rec.expires_ms, rec.id))

    def _current(self, task_id: str, placement: int, where: str) -> _Record | None:
        rec = self._records.get(task_id)
        if rec is None or rec.placement != placement or rec.where != where:
            return None
        return rec

    def _promote(self, queue: _Queue, now: int) -> None:
        while queue.delayed and queue.delayed[0][0] <= now:
            _, task_id, placement = heapq.heappop(queue.delayed)
            rec = self._current(task_id, placement, DELAYED)
            if rec is not None:
                rec.where = READY
                heapq.heappush(queue.ready, (-rec.priority, rec.seq, rec.id, placement))

    def _head(self, queue: _Queue) -> _Record | None:
        while queue.ready:
            _, _, task_id, placement = queue.ready[0]
            rec = self._current(task_id, placement, READY)
            if rec is not None:
                return rec
            heapq.heappop(queue.ready)
        return None

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- port --------------------------------------------------------------------------

    async def add(self, entries: Sequence[LiveEntry]) -> None:
        for entry in entries:
            self._insert(entry)
        await self._notify()

    def _insert(self, entry: LiveEntry) -> None:
        rec = _Record(
            id=entry.id,
            queue=entry.queue,
            priority=entry.priority,
            seq=entry.seq,
            eta_ms=entry.eta_ms,
            expires_ms=entry.expires_ms,
            holds=set(entry.holds),
            version=entry.version,
        )
        self._records[entry.id] = rec
        if entry.running_token:
            rec.where, rec.token, rec.worker_id = RUNNING, entry.running_token, entry.worker_id
            rec.deadline_ms = entry.eta_ms  # restored leases get a fresh deadline as eta
            self._leased[rec.id] = rec
        else:
            self._place(rec)

    async def restore(self, entries: Sequence[LiveEntry]) -> int:
        fresh = [e for e in entries if e.id not in self._records]
        for entry in fresh:
            self._insert(entry)
        await self._notify()
        return len(fresh)

    async def contains(self, refs: Sequence[TaskRef]) -> list[bool]:
        return [ref.id in self._records for ref in refs]

    async def claim(
        self, queues: Sequence[str], worker_id: str, limit: int, lease_ms: int
    ) -> ClaimBatch:
        now = self._clock()
        claims: list[Claim] = []
        expired: list[TaskRef] = []
        for name in queues:
            self._promote(self._queue(name), now)
        while len(claims) < limit:
            rec = self._best(queues)
            if rec is None:
                break
            heapq.heappop(self._queues[rec.queue].ready)
            if rec.expires_ms is not None and rec.expires_ms <= now:
                rec.where = HELD  # stays live until the service revokes it
                expired.append(TaskRef(rec.queue, rec.id))
                continue
            rec.where, rec.worker_id, rec.deadline_ms = RUNNING, worker_id, now + lease_ms
            rec.token = secrets.token_hex(16)
            self._leased[rec.id] = rec
            rec.version += 1
            claims.append(Claim(rec.id, rec.queue, rec.token, rec.deadline_ms, rec.version))
        return ClaimBatch(claims, expired)

    def _best(self, queues: Sequence[str]) -> _Record | None:
        heads = [h for h in (self._head(self._queue(q)) for q in queues) if h is not None]
        return min(heads, key=lambda r: (-r.priority, r.seq), default=None)

    async def wait_for_work(self, queues: Sequence[str], timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with self._changed:
            while True:
                now = self._clock()
                wake_at = deadline
                for name in queues:
                    queue = self._queue(name)
                    self._promote(queue, now)
                    if self._head(queue) is not None:
                        return
                    if queue.delayed:
                        wake_at = min(wake_at, loop.time() + (queue.delayed[0][0] - now) / 1000)
                remaining = wake_at - loop.time()
                if loop.time() >= deadline:
                    return
                try:
                    async with asyncio.timeout(max(remaining, 0.0005)):
                        await self._changed.wait()
                except TimeoutError:
                    if loop.time() >= deadline:
                        return

    async def renew(
        self, worker_id: str, leases: Sequence[tuple[TaskRef, str]], lease_ms: int
    ) -> Renewal:
        deadline = self._clock() + lease_ms
        renewed: list[str] = []
        owed = self._cancels.pop(worker_id, {})
        for ref, token in leases:
            rec = self._running(ref.id, token)
            if rec is None:
                owed.setdefault(ref.id, CancelReason.LEASE_LOST)
            else:
                rec.deadline_ms = deadline
                renewed.append(ref.id)
        return Renewal(renewed, list(owed.items()))

    def _running(self, task_id: str, token: str) -> _Record | None:
        rec = self._records.get(task_id)
        if rec is None or rec.where != RUNNING or not token or rec.token != token:
            return None
        return rec

    async def finish(self, ref: TaskRef, token: str) -> Moved | None:
        rec = self._running(ref.id, token)
        if rec is None:
            return None
        self._drop(rec)
        return Moved(rec.version + 1, rec.worker_id)

    def _drop(self, rec: _Record) -> None:
        del self._records[rec.id]
        self._leased.pop(rec.id, None)

    async def retry(self, ref: TaskRef, token: str, eta_ms: int) -> Moved | None:
        rec = self._running(ref.id, token)
        if rec is None:
            return None
        rec.eta_ms, worker = eta_ms, rec.worker_id
        return await self._requeue(rec, worker)

    async def release(self, ref: TaskRef, token: str) -> Moved | None:
        rec = self._running(ref.id, token)
        if rec is None:
            return None
        rec.eta_ms = min(rec.eta_ms, self._clock())
        return await self._requeue(rec, rec.worker_id)

    async def _requeue(self, rec: _Record, worker: str) -> Moved:
        rec.version += 1
        self._place(rec)
        await self._notify()
        return Moved(rec.version, worker)

    async def revoke(self, ref: TaskRef) -> Revoked:
        rec = self._records.get(ref.id)
        if rec is None or rec.where == RUNNING:
            return Revoked(RevokeOutcome.NOT_PENDING)
        self._drop(rec)
        return Revoked(RevokeOutcome.REVOKED, rec.version + 1)

    async def unhold(self, ref: TaskRef, hold: Hold) -> Moved | None:
        rec = self._records.get(ref.id)
        if rec is None or rec.where == RUNNING or hold not in rec.holds:
            return None
        rec.holds.discard(hold)
        return await self._requeue(rec, "")

    async def kill(self, ref: TaskRef) -> Moved | None:
        rec = self._records.get(ref.id)
        if rec is None or rec.where != RUNNING:
            return None
        self._drop(rec)
        self._cancels.setdefault(rec.worker_id, {})[rec.id] = CancelReason.KILLED
        return Moved(rec.version + 1, rec.worker_id)

    async def expired_leases(self, limit: int) -> list[ExpiredLease]:
        now = self._clock()
        found = [
            ExpiredLease(TaskRef(r.queue, r.id), r.token, r.worker_id)
            for r in self._leased.values()
            if r.deadline_ms <= now
        ]
        return found[:limit]

    def _prune_expiries(self) -> None:
        """Drop heap entries of tasks that ended or run (a retry pushes a fresh one)."""
        while self._expiries:
            rec = self._records.get(self._expiries[0][1])
            if rec is not None and rec.where != RUNNING:
                return
            heapq.heappop(self._expiries)

    async def due_expiries(self, limit: int) -> list[TaskRef]:
        now = self._clock()
        due: dict[str, TaskRef] = {}
        self._prune_expiries()
        while self._expiries and self._expiries[0][0] <= now and len(due) < limit:
            _, task_id = heapq.heappop(self._expiries)
            rec = self._records.get(task_id)
            if rec is not None and rec.where != RUNNING:
                due[task_id] = TaskRef(rec.queue, rec.id)
            self._prune_expiries()
        for ref in due.values():  # stay due until the service has revoked them
            heapq.heappush(self._expiries, (now, ref.id))
        return list(due.values())

    async def epoch(self) -> str:
        return self._epoch

    async def next_deadline_ms(self) -> int | None:
        self._prune_expiries()
        candidates = [r.deadline_ms for r in self._leased.values()]
        if self._expiries:
            candidates.append(self._expiries[0][0])
        return min(candidates, default=None)
