"""The worker side: lease due tasks, renew leases, take results."""

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from giobba_server.domain.clock import from_ms
from giobba_server.domain.document import refuse_oversized_result
from giobba_server.domain.errors import GiobbaError, InvalidArgument, StaleLease, Unavailable
from giobba_server.domain.payload import parse_object
from giobba_server.domain.ports import CancelReason, Claim, TaskRef, WorkerStatus
from giobba_server.domain.spec import check_queue
from giobba_server.domain.task import Task, TaskState
from giobba_server.services.context import Deps, announcing, record, ref
from giobba_server.services.transitions import (
    EXPIRED,
    complete,
    fail_attempt,
    load,
    revoke_pending,
)

log = logging.getLogger("giobba.leasing")

MAX_LEASE_BATCH = 1000
TIMEOUT = "timeout"
# Longer than a worker's default kill grace (5 s): a conforming worker reports first.
TIMEOUT_GRACE = timedelta(seconds=10)
# A long-poll stops claiming for a worker not heard from for this many heartbeat intervals.
SILENCE_LIMIT = 1.5


@dataclass(frozen=True)
class Leased:
    task: Task
    token: str
    deadline: datetime
    timeout: timedelta | None


def _check_lease_args(queues: Sequence[str], limit: int) -> list[str]:
    if not 1 <= limit <= MAX_LEASE_BATCH:
        raise InvalidArgument("max_tasks", f"{limit} is out of range 1-{MAX_LEASE_BATCH}")
    names = [check_queue(f"queues[{i}]", q) for i, q in enumerate(queues or ["default"])]
    return list(dict.fromkeys(names))


async def lease(
    deps: Deps, worker_id: str, queues: Sequence[str], limit: int, wait: float
) -> list[Leased]:
    """Long-poll: return as soon as anything is claimed, or empty after `wait` seconds."""
    if not worker_id:
        raise InvalidArgument("worker_id", "must not be empty")
    names = _check_lease_args(queues, limit)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(max(wait, 0.0), deps.settings.polling_timeout.total_seconds())
    # The call itself shows the worker alive; later, it must still be heard from, or a
    # frozen worker's open poll would claim tasks (its own retries too) it cannot run.
    trusted_until = loop.time() + deps.settings.heartbeat_interval.total_seconds()
    while True:
        if loop.time() > trusted_until:
            trust = await _trust_left(deps, worker_id)
            if trust <= 0:
                return []
            trusted_until = loop.time() + trust
        batch = await deps.broker.claim(names, worker_id, limit, deps.settings.lease_ms)
        for expired in batch.expired:
            await _revoke_expired(deps, expired)
        if batch.claims:
            return await _start_or_hand_back(deps, worker_id, batch.claims)
        remaining = deadline - loop.time()
        if remaining <= 0:
            return []
        await deps.broker.wait_for_work(names, remaining)


async def _trust_left(deps: Deps, worker_id: str) -> float:
    """Seconds until the worker counts as silent: no beat (Heartbeat, or a LeaseTasks
    that carried its status) for SILENCE_LIMIT heartbeat intervals, on the server's clock.
    Healthy workers beat every interval; a frozen one has been silent for about two or
    more (the lease, three, less the gap since its last renewal) by the time the lease it
    held lapses and its retry comes due: 1.5 leaves half an interval either side."""
    seen = await deps.registry.last_seen(worker_id)
    if seen is None:
        return 0.0
    limit = deps.settings.heartbeat_interval * SILENCE_LIMIT
    return (seen + limit - deps.clock()).total_seconds()


async def _revoke_expired(deps: Deps, expired: TaskRef) -> None:
    """Best effort: the worker asked for work, not for this. A task not revoked here stays
    due for the reaper's expiry sweep; one revoked but not recorded is mended."""
    try:
        task = await deps.repo.get(expired.id)
        if task is not None:
            await revoke_pending(deps, task, EXPIRED)
    except Unavailable as exc:
        log.warning("task %s expired but is not revoked yet: %s", expired.id, exc)


async def _start_or_hand_back(deps: Deps, worker_id: str, claims: list[Claim]) -> list[Leased]:
    """Record the claims as RUNNING, even if the caller hangs up meanwhile (shielded); a
    caller that did hang up never sees them, so they go straight back to the queue without
    using up an attempt, instead of waiting for their leases to expire."""
    starting = asyncio.ensure_future(_start_all(deps, worker_id, claims))
    try:
        return await asyncio.shield(starting)
    except asyncio.CancelledError:
        with contextlib.suppress(GiobbaError):  # a start that failed handed its claims back
            await _hand_back(deps, await starting)
        raise


async def _start_all(deps: Deps, worker_id: str, claims: list[Claim]) -> list[Leased]:
    """Record each claim as RUNNING. Shielded: a caller that hangs up mid-way must not
    leave a claim unrecorded (the lease reaper would then find an unknown attempt). If a
    backend fails, every claim of the batch is handed back (PENDING, no attempt used) and
    the caller hears Unavailable: the worker never sees them, so none may wait for its
    lease to lapse and count as a lost attempt."""
    waiting = deque(claims)
    leased: list[Leased] = []
    try:
        # What a task still owes (a retry's record, say) is written before it is read.
        await deps.mender.catch_up([c.id for c in claims])
        tasks = await deps.repo.get_many([c.id for c in claims])
        while waiting:
            claim = waiting.popleft()
            task = tasks.get(claim.id)
            if task is None:  # the broker knew a task the repository lost: do not run it
                await deps.broker.finish(TaskRef(claim.queue, claim.id), claim.token)
                continue
            leased.append(await _start(deps, worker_id, task, claim))
    except Unavailable:
        await _unclaim(deps, waiting)
        await _hand_back(deps, leased)
        raise
    return leased


async def _start(deps: Deps, worker_id: str, task: Task, claim: Claim) -> Leased:
    """Record one claim as RUNNING; if that fails, hand the claim back before raising."""
    now = deps.clock()
    after = task.evolve(
        state=TaskState.RUNNING,
        version=claim.version,
        attempts=task.attempts + 1,
        started_at=now,
        updated_at=now,
        worker_id=worker_id,
        lease_token=claim.token,
        scheduler_id=deps.settings.server_id,
    )
    try:
        await deps.repo.save(after)
    except Unavailable:
        await _unclaim(deps, [claim])  # the record never saw this attempt: undo it in the broker
        raise
    try:
        await deps.mender.carry(after.id, [announcing(deps, task, after, "STARTED")])
    except Unavailable:
        await _hand_back(deps, [Leased(after, claim.token, now, None)])
        raise
    return Leased(
        after, claim.token, from_ms(claim.lease_deadline_ms), effective_timeout(deps, task)
    )


async def _unclaim(deps: Deps, claims: Iterable[Claim]) -> None:
    """Undo claims the repository never recorded, in the broker alone."""
    for claim in claims:
        try:
            await deps.broker.release(TaskRef(claim.queue, claim.id), claim.token)
        except Unavailable as exc:
            log.warning("claim on task %s not handed back (%s): its lease lapses", claim.id, exc)


async def _hand_back(deps: Deps, leased: Iterable[Leased]) -> None:
    """Release recorded claims the worker will never see (their records may follow late)."""
    for item in leased:
        with contextlib.suppress(GiobbaError):
            await _release(deps, item.task, item.token)


def effective_timeout(deps: Deps, task: Task) -> timedelta | None:
    limits = [t for t in (task.timeout, deps.settings.execution_cutoff) if t is not None]
    return min(limits, default=None)


async def _running(deps: Deps, task_id: str, token: str) -> Task:
    if not token:
        raise InvalidArgument("lease_token", "must not be empty")
    task = await load(deps, task_id)
    if task.state is not TaskState.RUNNING or task.lease_token != token:
        raise StaleLease(f"lease on task {task_id} is no longer current (task is {task.state})")
    return task


async def complete_task(deps: Deps, task_id: str, token: str, result: str) -> Task:
    parse_object(result, "result")
    task = await _running(deps, task_id, token)
    # Before the broker's step: a save refused after it would leave the move half-done.
    refuse_oversized_result(task, result or "{}")
    done = await complete(deps, task, token, result)
    if done is None:
        raise StaleLease(f"lease on task {task_id} is no longer current")
    return done


async def fail_task(deps: Deps, task_id: str, token: str, error: str, no_retry: bool) -> Task:
    task = await _running(deps, task_id, token)
    after = await fail_attempt(deps, task, token, error, retryable=not no_retry)
    if after is None:
        raise StaleLease(f"lease on task {task_id} is no longer current")
    return after


async def release_task(deps: Deps, task_id: str, token: str) -> Task:
    """Hand a task back without using up its attempt."""
    return await _release(deps, await _running(deps, task_id, token), token)


async def _release(deps: Deps, task: Task, token: str) -> Task:
    moved = await deps.broker.release(ref(task), token)
    if moved is None:
        raise StaleLease(f"lease on task {task.id} is no longer current")
    after = task.evolve(
        state=TaskState.PENDING,
        version=moved.version,
        attempts=max(task.attempts - 1, 0),
        updated_at=deps.clock(),
        lease_token="",
        scheduler_id=deps.settings.server_id,
    )
    return await record(deps, task, after, "RELEASED")


async def heartbeat(
    deps: Deps, status: WorkerStatus, leases: Sequence[tuple[str, str]]
) -> tuple[list[str], list[tuple[str, CancelReason]]]:
    """Renew the worker's leases. Task queues come from the repository, never from the
    worker, so a confused worker cannot renew someone else's lease. An attempt past its
    execution limit (plus grace) is ended here rather than renewed: a worker that keeps
    heartbeating but never enforces the limit must not hold the task forever."""
    tasks = await deps.repo.get_many([task_id for task_id, _ in leases])
    overdue = await _end_overdue(deps, tasks, leases)
    known = [(ref(tasks[i]), t) for i, t in leases if i in tasks and i not in overdue]
    renewal = await deps.broker.renew(status.id, known, deps.settings.lease_ms)
    lost = [(i, CancelReason.LEASE_LOST) for i, _ in leases if i not in tasks]
    timed_out = [(i, CancelReason.TIMEOUT) for i in overdue]
    ttl = int(deps.settings.worker_ttl.total_seconds() * 1000)
    await deps.registry.beat(status, ttl)
    return renewal.renewed, renewal.cancelled + lost + timed_out


def overdue_at(deps: Deps, task: Task) -> datetime | None:
    """When the server stops waiting for the worker to report a timeout itself: the limit,
    then the worker's kill grace, then one lease for its report to arrive."""
    limit = effective_timeout(deps, task)
    if limit is None or task.started_at is None:
        return None
    return task.started_at + limit + TIMEOUT_GRACE + deps.settings.lease


async def _end_overdue(
    deps: Deps, tasks: dict[str, Task], leases: Sequence[tuple[str, str]]
) -> set[str]:
    """Fail (as `timeout`) the current attempts that ran past their limit; their ids."""
    now = deps.clock()
    ended: set[str] = set()
    for task_id, token in leases:
        task = tasks.get(task_id)
        if task is None or task.state is not TaskState.RUNNING or task.lease_token != token:
            continue
        due = overdue_at(deps, task)
        if due is None or now < due:
            continue
        if await fail_attempt(deps, task, token, TIMEOUT) is not None:
            ended.add(task_id)
    return ended
