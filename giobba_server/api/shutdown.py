"""Let long-polls and streams end as soon as the server starts stopping.

Without this, every open LeaseTasks long-poll and WatchX stream would hold a graceful stop
for its whole grace period; ended early, workers and monitors reconnect to another server
(or to this one once it is back) at once.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

T = TypeVar("T")


async def unless_stopping(call: Awaitable[T], stopping: asyncio.Event) -> T | None:
    """The call's result, or None (the call cancelled) once `stopping` is set."""
    work = asyncio.ensure_future(call)
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
    return work.result() if not work.cancelled() else None


async def until_stopping(items: AsyncIterator[T], stopping: asyncio.Event) -> AsyncIterator[T]:
    """Yield from `items` until it ends or `stopping` is set."""
    iterator = aiter(items)
    while not stopping.is_set():
        step = await unless_stopping(_next(iterator), stopping)
        if not step:  # stopping, or the stream ended
            return
        yield step[0]


async def _next(iterator: AsyncIterator[T]) -> list[T]:
    """[item], or [] at the end (a list, so a falsy item is not mistaken for the end)."""
    try:
        return [await anext(iterator)]
    except StopAsyncIteration:
        return []
