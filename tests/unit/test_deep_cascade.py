"""A parent chain thousands deep cascades without recursion, and a server restarts on it."""

import uuid
from pathlib import Path

from giobba_server.broker.memory import MemoryBroker
from giobba_server.broker.memory_feed import MemoryFeed, MemoryRegistry
from giobba_server.domain.spec import TaskSpec
from giobba_server.domain.task import StartMode, TaskState
from giobba_server.services import submit, transitions
from giobba_server.services.context import Deps, Settings, ref
from giobba_server.services.recovery import reconcile
from giobba_server.store.sqlite import SqliteRepository

DEPTH = 3000


async def _deps(path: Path) -> Deps:
    repo = SqliteRepository(str(path))
    await repo.open()
    return Deps(MemoryBroker(), repo, MemoryFeed(), MemoryRegistry(), Settings(server_id="s"))


def _chain() -> list[TaskSpec]:
    ids = [str(uuid.uuid4()) for _ in range(DEPTH)]
    specs = [TaskSpec(id=ids[0], name="root", start_mode=StartMode.MANUAL)]
    specs += [TaskSpec(id=ids[i], name="link", parent_id=ids[i - 1]) for i in range(1, DEPTH)]
    return specs


async def test_revoking_the_root_of_a_deep_chain_revokes_every_link(tmp_path: Path) -> None:
    deps = await _deps(tmp_path / "g.db")
    tasks = await submit.submit(deps, _chain(), batch=True)
    root, last = tasks[0], tasks[-1]
    await transitions.revoke(deps, root.id, "stop")
    final = await deps.repo.get(last.id)
    assert final is not None and final.state is TaskState.REVOKED
    assert final.error == f"parent {root.id} REVOKED"  # the ancestor that ended
    await deps.repo.close()


async def test_restart_settles_a_deep_chain_whose_root_ended(tmp_path: Path) -> None:
    deps = await _deps(tmp_path / "g.db")
    tasks = await submit.submit(deps, _chain(), batch=True)
    root = tasks[0]
    # The root ends, but the "crash" happens before its children are settled.
    revoked = await deps.broker.revoke(ref(root))
    await transitions.finish_terminal(
        deps, root, revoked.version, TaskState.REVOKED, settle=False, error="crash"
    )
    await deps.repo.close()
    restarted = await _deps(tmp_path / "g.db")
    await reconcile(restarted)
    final = await restarted.repo.get(tasks[-1].id)
    assert final is not None and final.state is TaskState.REVOKED
    await restarted.repo.close()
