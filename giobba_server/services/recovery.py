"""Start-up reconciliation: the repository is the source of truth. Every PENDING or
RUNNING task it holds that the broker does not know (an embedded restart, a flushed or
restarted Redis) is made live again with its priority, ETA, holds and lease intact.

This is also what covers a crash while a move's tail was still owed (services/mending):
the broker made the move, the repository never heard of it. A task recorded RUNNING whose
attempt the broker already ended comes back RUNNING with its token and a fresh lease: the
worker's retried report lands, or the lease lapses and the reaper counts a lost attempt
(retried or FAILED). A parent recorded terminal whose children were never settled is
settled below. Nothing is left RUNNING or PENDING without an owner."""

import logging
from dataclasses import replace

from giobba_server.domain.clock import to_ms
from giobba_server.domain.ports import LiveEntry
from giobba_server.domain.task import Hold, Task, TaskState
from giobba_server.services.context import Deps, live_entry
from giobba_server.services.transitions import settle_children

log = logging.getLogger("giobba.recovery")

PAGE = 1000


def _entry(deps: Deps, task: Task) -> LiveEntry:
    entry = live_entry(task)
    if task.state is TaskState.RUNNING:
        # The worker may still be running it: keep its token and give it a fresh lease;
        # if it is gone, the lease expires and the reaper counts a lost attempt.
        deadline = to_ms(deps.clock()) + deps.settings.lease_ms
        return replace(
            entry, running_token=task.lease_token, worker_id=task.worker_id, eta_ms=deadline
        )
    return entry


async def reconcile(deps: Deps) -> int:
    # While this server runs (the broker lost its state), write what is owed first: a
    # task must be restored from its latest record, not from one a move already left.
    await deps.mender.catch_up_all()
    restored = 0
    after = ""
    waiting: set[str] = set()
    while True:
        tasks = await deps.repo.live(after, PAGE)
        if not tasks:
            break
        restored += await deps.broker.restore([_entry(deps, t) for t in tasks])
        waiting.update(t.parent_id for t in tasks if Hold.PARENT in t.holds)
        after = tasks[-1].id
    # A parent may have ended after its children were last settled (a crash in between).
    parents = await deps.repo.get_many(sorted(waiting))
    for parent in parents.values():
        if parent.state.terminal:
            await settle_children(deps, parent)
    if restored:
        log.info("recovery: restored %d live tasks into the broker", restored)
    return restored
