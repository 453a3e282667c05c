"""Moves that end or restart an attempt, and what follows from them (cascades, children)."""

import functools
from datetime import datetime

from giobba_server.domain.callback import CallbackStatus, OutboxEntry, entry_for
from giobba_server.domain.clock import to_ms, to_ms_not_before
from giobba_server.domain.errors import FailedPrecondition, NotFound
from giobba_server.domain.outbox import CallbackQueue
from giobba_server.domain.ports import RevokeOutcome
from giobba_server.domain.retry import backoff
from giobba_server.domain.task import Hold, StartMode, Task, TaskState
from giobba_server.services.context import Deps, record, recording, ref, saving
from giobba_server.services.mending import Step

EXPIRED = "expired"
WORKER_LOST = "worker lost"
MAX_ERROR = 64 * 1024


async def load(deps: Deps, task_id: str) -> Task:
    """The task as recorded, once anything still owed for it is written: a move built on
    a record that misses an earlier move's write would undo that move."""
    await deps.mender.catch_up([task_id])
    task = await deps.repo.get(task_id)
    if task is None:
        raise NotFound(f"task {task_id} not found")
    return task


async def finish_terminal(
    deps: Deps,
    task: Task,
    moved_version: int,
    state: TaskState,
    *,
    settle: bool = True,
    **changes: object,
) -> Task:
    """Record a terminal move, then settle the task's children (unless the caller walks
    the descendants itself, as a cascade does)."""
    now = deps.clock()
    after = task.evolve(
        state=state,
        version=moved_version,
        updated_at=now,
        completed_at=now,
        lease_token="",
        scheduler_id=deps.settings.server_id,
        **changes,
    )
    steps: list[Step] = []
    queue = deps.callbacks
    owed = entry_for(after, to_ms(now)) if queue is not None else None
    if owed is not None and queue is not None:
        after = after.evolve(callback_status=CallbackStatus.PENDING.value)
        # Stored before the move is saved: a crash right after the save still delivers.
        steps.append(Step("stage callback", functools.partial(queue.stage, owed)))
    steps += recording(deps, task, after, state.value)
    if owed is not None and queue is not None:
        steps.append(Step("deliver callback", functools.partial(_ready, queue, owed)))
    if settle:
        steps.append(Step("settle children", functools.partial(settle_children, deps, after)))
    await deps.mender.carry(after.id, steps)
    return after


async def _ready(queue: CallbackQueue, entry: OutboxEntry) -> None:
    queue.ready(entry)


async def settle_children(deps: Deps, parent: Task) -> None:
    """A COMPLETED parent frees its children; any other end revokes them, transitively.
    Safe to run again: a child already settled is left alone."""
    if parent.state is TaskState.COMPLETED:
        for child in await deps.repo.children(parent.id):
            await release_hold(deps, child, Hold.PARENT)
        return
    reason = f"parent {parent.id} {parent.state.value}"
    # Breadth-first over the descendants, in a loop: a chain thousands deep must not
    # recurse (each revoked child is walked here, not by its own finish_terminal). Every
    # child is walked, revoked now or before: a run cut short by a backend failure and run
    # again may find a child revoked but its own children not yet.
    frontier = [parent.id]
    while frontier:
        for child in await deps.repo.children(frontier.pop()):
            await revoke_pending(deps, child, reason, cascade=False)
            frontier.append(child.id)


async def release_hold(deps: Deps, task: Task, hold: Hold) -> Task | None:
    moved = await deps.broker.unhold(ref(task), hold)
    if moved is None:
        return None
    changes: dict[str, object] = {"holds": task.holds - {hold}}
    if hold is Hold.MANUAL:
        changes["start_mode"] = StartMode.AUTO
    after = task.evolve(version=moved.version, updated_at=deps.clock(), **changes)
    await deps.mender.carry(after.id, [saving(deps, after)])
    return after


async def revoke_pending(deps: Deps, task: Task, error: str, cascade: bool = True) -> Task | None:
    """PENDING -> REVOKED if the broker agrees; None when the task was not pending."""
    if task.state is not TaskState.PENDING:
        return None
    revoked = await deps.broker.revoke(ref(task))
    if revoked.outcome is not RevokeOutcome.REVOKED:
        return None
    return await finish_terminal(
        deps, task, revoked.version, TaskState.REVOKED, settle=cascade, error=error
    )


async def revoke(deps: Deps, task_id: str, reason: str) -> tuple[Task, list[str]]:
    task = await load(deps, task_id)
    if task.state is not TaskState.PENDING:
        raise FailedPrecondition(
            f"task {task_id} is {task.state.value}; only PENDING tasks can be revoked"
        )
    after = await revoke_pending(deps, task, reason or "revoked")
    if after is None:
        current = await load(deps, task_id)
        raise FailedPrecondition(
            f"task {task_id} is {current.state.value}; only PENDING tasks can be revoked"
        )
    children = await deps.repo.children(task_id)
    return after, [c.id for c in children]


async def complete(deps: Deps, task: Task, token: str, result: str) -> Task | None:
    moved = await deps.broker.finish(ref(task), token)
    if moved is None:
        return None
    return await finish_terminal(
        deps, task, moved.version, TaskState.COMPLETED, result=result or "{}", error=""
    )


def _retry_eta(deps: Deps, task: Task, now: datetime) -> datetime:
    base = task.retry_backoff or deps.settings.retry_base
    return now + backoff(task.retries + 1, base, deps.settings.retry_cap)


async def fail_attempt(
    deps: Deps, task: Task, token: str, error: str, retryable: bool = True
) -> Task | None:
    """A failed attempt: retry with backoff while retries remain, else FAILED."""
    error = error[:MAX_ERROR] or "failed"
    now = deps.clock()
    if retryable and task.retries < task.max_retries:
        eta = _retry_eta(deps, task, now)
        moved = await deps.broker.retry(ref(task), token, to_ms_not_before(eta))
        if moved is None:
            return None
        after = task.evolve(
            state=TaskState.PENDING,
            version=moved.version,
            retries=task.retries + 1,
            eta=eta,
            error=error,
            updated_at=now,
            lease_token="",
            scheduler_id=deps.settings.server_id,
        )
        await record(deps, task, after, "RETRIED")
        if task.expires_at is not None and eta > task.expires_at:
            return await revoke_pending(deps, after, EXPIRED) or after
        return after
    moved = await deps.broker.finish(ref(task), token)
    if moved is None:
        return None
    return await finish_terminal(deps, task, moved.version, TaskState.FAILED, error=error)
