"""Timed waits on events (the SDK's copy of the server's helpers: the two packages are
installed together but the client must not import the server).

`asyncio.timeout`, not `asyncio.wait_for`: on Python 3.11 the latter can swallow a
cancellation that lands just as the event is set.
"""

import asyncio


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until `event` is set or `seconds` pass; True if it was set. A task with a
    cancellation pending never starts a wait (a swallowed cancellation must not turn into
    a loop that outlives its stop)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
    try:
        async with asyncio.timeout(max(seconds, 0.0)):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True


async def pause_after_error(seconds: float, interrupt: asyncio.Event | None = None) -> None:
    """Back off before retrying a failed call — never a wait for work. Returns early when
    `interrupt` (e.g. a stop request) is set."""
    await wait_event(interrupt or asyncio.Event(), seconds)
