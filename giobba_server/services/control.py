"""Operator moves on a single task: release a MANUAL task, kill a running one."""

from giobba_server.domain.errors import FailedPrecondition
from giobba_server.domain.ports import CancelReason
from giobba_server.domain.task import Hold, StartMode, Task, TaskState
from giobba_server.services.context import Deps, event, ref
from giobba_server.services.transitions import finish_terminal, load, release_hold


async def auto_task(deps: Deps, task_id: str) -> Task:
    task = await load(deps, task_id)
    if task.state is not TaskState.PENDING:
        raise FailedPrecondition(
            f"task {task_id} is {task.state.value}; only PENDING tasks can be switched to AUTO"
        )
    if Hold.MANUAL not in task.holds:
        return task  # already AUTO: asking twice is harmless
    after = await release_hold(deps, task, Hold.MANUAL)
    if after is None:
        current = await load(deps, task_id)
        if current.start_mode is StartMode.AUTO:
            return current
        raise FailedPrecondition(f"task {task_id} is {current.state.value}")
    await deps.feed.publish([event(after, task.state, "RELEASED", after.updated_at)])
    return after


async def kill_task(deps: Deps, task_id: str, reason: str) -> Task:
    """RUNNING -> KILLED, never retried. The worker's late result is refused (ABORTED)
    because the kill made its lease token stale."""
    task = await load(deps, task_id)
    if task.state is not TaskState.RUNNING:
        raise FailedPrecondition(
            f"task {task_id} is {task.state.value}; only RUNNING tasks can be killed"
        )
    moved = await deps.broker.kill(ref(task))
    if moved is None:
        current = await load(deps, task_id)
        raise FailedPrecondition(
            f"task {task_id} is {current.state.value}; only RUNNING tasks can be killed"
        )
    # The broker fenced the lease and owes the cancel to the worker's next heartbeat; the
    # push gets it there within about a second, wherever the worker's stream is open.
    if deps.cancels is not None:
        await deps.cancels.notify(moved.worker_id or task.worker_id, task.id, CancelReason.KILLED)
    return await finish_terminal(
        deps, task, moved.version, TaskState.KILLED, error=reason or "killed"
    )
