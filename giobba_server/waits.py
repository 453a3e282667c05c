"""Timed waits on events, for the server's background loops.

Work and deadlines arrive by notification (an event set by whoever changed something) or
by a timer on the next known deadline; these helpers are the timer half. They use
`asyncio.timeout` rather than `asyncio.wait_for`, which on Python 3.11 can swallow a
cancellation that lands just as the event is set, leaving a loop running past `stop()`.
"""

import asyncio


def raise_if_cancelling() -> None:
    """Go on as the cancellation when one is pending on this task that a driver swallowed
    (redis-py's reads can return None or raise their own errors instead)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until `event` is set or `seconds` pass; True if it was set.

    A task with a cancellation pending never starts a wait: a driver can swallow our
    cancellation (redis-py and pymongo turn it into errors of their own mid-connect), and
    `asyncio.timeout` entered by a task already cancelling turns the next cancellation
    into a timeout, so a loop would run past `stop()` for ever."""
    raise_if_cancelling()
    try:
        async with asyncio.timeout(max(seconds, 0.0)):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True


async def pause_after_error(seconds: float, interrupt: asyncio.Event | None = None) -> None:
    """Back off `seconds` before retrying a call that failed — never a wait for work.
    Returns early when `interrupt` (e.g. shutdown) is set; cancellation ends it too."""
    await wait_event(interrupt or asyncio.Event(), seconds)
