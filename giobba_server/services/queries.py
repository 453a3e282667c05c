"""Reading tasks: get, list, and waiting for one to end."""

import asyncio

from giobba_server.domain.document import text_size
from giobba_server.domain.errors import InvalidArgument
from giobba_server.domain.ports import Page, TaskFilter, page_token, parse_page_token
from giobba_server.domain.task import Task
from giobba_server.services.context import Deps
from giobba_server.services.transitions import load

MAX_PAGE = 1000
DEFAULT_PAGE = 100
MAX_WAIT = 300.0
# Well under the 64 MiB a gRPC message may carry here (servers and SDK alike).
MAX_PAGE_BYTES = 32 * 1024 * 1024


async def get_task(deps: Deps, task_id: str) -> Task:
    if not task_id:
        raise InvalidArgument("id", "must not be empty")
    return await load(deps, task_id)


async def list_tasks(deps: Deps, flt: TaskFilter, page_size: int, token: str) -> Page:
    if page_size < 0 or page_size > MAX_PAGE:
        raise InvalidArgument("page_size", f"{page_size} is out of range 0-{MAX_PAGE}")
    if token and parse_page_token(token) is None:
        raise InvalidArgument("page_token", "is not a token from a previous page")
    return fit(await deps.repo.query(flt, page_size or DEFAULT_PAGE, token))


def fit(page: Page) -> Page:
    """Cut a page whose tasks would not fit one gRPC message (payloads and results can be
    15 MiB each): the caller gets the rest on the next page instead of an error, and
    always at least one task, so paging never stalls."""
    kept: list[Task] = []
    size = 0
    for task in page.tasks:
        size += text_size(task)
        if kept and size > MAX_PAGE_BYTES:
            return Page(kept, page_token(kept[-1]))
        kept.append(task)
    return page


async def wait_task(deps: Deps, task_id: str, timeout: float) -> tuple[Task, bool]:
    """Return the task once terminal, or as it is when `timeout` passes."""
    timeout = min(max(timeout, 0.0), MAX_WAIT)  # 0: look once (the servicer applies defaults)
    # Note the feed's position before reading, so an end in between is replayed, not missed.
    cursor = await deps.feed.head()
    task = await get_task(deps, task_id)
    if task.state.terminal or timeout == 0:
        return task, task.state.terminal
    events = deps.feed.watch(cursor)
    try:
        async with asyncio.timeout(timeout):
            async for activity in events:
                if activity.task_id == task_id and activity.new_state.terminal:
                    return await load(deps, task_id), True
    except TimeoutError:
        pass
    finally:
        await events.aclose()
    return await load(deps, task_id), False
