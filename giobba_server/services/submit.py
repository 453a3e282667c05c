"""Submitting tasks: validate everything, write the repository, then the broker."""

from collections.abc import Sequence

from giobba_server.domain.errors import GiobbaError, InvalidArgument, Unavailable
from giobba_server.domain.spec import TaskSpec, build_task
from giobba_server.domain.task import Hold, Task, TaskState
from giobba_server.services.context import Deps, event, live_entry
from giobba_server.services.transitions import settle_children

MAX_BATCH = 10_000


async def submit(deps: Deps, specs: Sequence[TaskSpec], batch: bool = False) -> list[Task]:
    if batch and not 1 <= len(specs) <= MAX_BATCH:
        raise InvalidArgument("tasks", f"must hold 1-{MAX_BATCH} tasks, got {len(specs)}")
    if not batch and len(specs) == 1 and specs[0].schedule:
        from giobba_server.services import jobs  # noqa: PLC0415 - jobs builds on this module

        return [await jobs.create_from_task(deps, specs[0])]
    tasks = [
        _build(deps, spec, f"tasks[{i}]." if batch else "task.") for i, spec in enumerate(specs)
    ]
    _check_unique(tasks)
    tasks = await _apply_parents(deps, tasks)
    await persist(deps, tasks)
    await _recheck_parents(deps, [t for t in tasks if Hold.PARENT in t.holds])
    return tasks


async def persist(deps: Deps, tasks: list[Task]) -> None:
    """Write new tasks: the repository first, then the broker, then announce them."""
    now = deps.clock()
    await deps.repo.insert(tasks)
    live = [t for t in tasks if t.state is TaskState.PENDING]
    try:
        await deps.broker.add([live_entry(t) for t in live])
    except GiobbaError:
        await deps.repo.delete([t.id for t in tasks])
        raise
    except Exception as exc:  # a driver error we did not map: still leave nothing behind
        await deps.repo.delete([t.id for t in tasks])
        raise Unavailable(f"broker: {exc}") from exc
    await deps.feed.publish([event(t, None, "CREATED", now) for t in tasks])
    if any(t.expires_at for t in live):
        deps.timers_changed()


def _build(deps: Deps, spec: TaskSpec, prefix: str) -> Task:
    if spec.schedule:
        raise InvalidArgument(f"{prefix}schedule", "a batch cannot create jobs; use CreateJob")
    return build_task(
        spec,
        now=deps.clock(),
        seq=deps.next_seq(),
        scheduler_id=deps.settings.server_id,
        prefix=prefix,
    )


def _check_unique(tasks: list[Task]) -> None:
    seen: set[str] = set()
    for i, task in enumerate(tasks):
        if task.id in seen:
            raise InvalidArgument(f"tasks[{i}].id", f"{task.id} appears twice in the batch")
        seen.add(task.id)


async def _apply_parents(deps: Deps, tasks: list[Task]) -> list[Task]:
    """Unknown parents are refused; a parent that already ended decides the child now."""
    in_batch = {t.id: i for i, t in enumerate(tasks)}
    wanted = [t.parent_id for t in tasks if t.parent_id and t.parent_id not in in_batch]
    parents = await deps.repo.get_many(wanted)
    settled: list[Task] = []
    for i, task in enumerate(tasks):
        if not task.parent_id:
            settled.append(task)
            continue
        if task.parent_id in in_batch:
            if in_batch[task.parent_id] >= i:
                raise InvalidArgument(
                    f"tasks[{i}].parent_id", "a parent in the same batch must come before it"
                )
            settled.append(task)
            continue
        parent = parents.get(task.parent_id)
        if parent is None:
            field = f"tasks[{i}].parent_id" if len(tasks) > 1 else "task.parent_id"
            raise InvalidArgument(field, f"unknown parent task {task.parent_id}")
        settled.append(_settle_against(task, parent))
    return settled


def _settle_against(child: Task, parent: Task) -> Task:
    if parent.state is TaskState.COMPLETED:
        return child.evolve(holds=child.holds - {Hold.PARENT})
    if parent.state.terminal:
        return child.evolve(
            state=TaskState.REVOKED,
            error=f"parent {parent.id} {parent.state.value}",
            completed_at=child.created_at,
            holds=frozenset(),
        )
    return child


async def _recheck_parents(deps: Deps, waiting: list[Task]) -> None:
    """Close the race with a parent that ended between our read and our insert: its
    children lookup may have run before the child existed, so look again now."""
    if not waiting:
        return
    parents = await deps.repo.get_many([t.parent_id for t in waiting])
    for parent in parents.values():
        if parent.state.terminal:
            await settle_children(deps, parent)
