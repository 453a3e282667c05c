"""Carrying the tail of a move to its end once the broker has made the move.

Every move is made first in the broker, atomically; what follows (save the task, publish
its event, hand its callback to delivery, settle its children) is the move's *tail*. A
backend can fail between the broker's step and the end of the tail: the repository locked
by another process, the feed's file busy, MongoDB failing over. The broker's step cannot
be taken back (another server may already act on it), so the tail is carried forward: it
runs inline, and from the first step that raises Unavailable it is owed to a background
loop that retries it, with capped exponential backoff, until every step has succeeded. The
caller still hears Unavailable: its move was made, but is not recorded yet.

What keeps this correct:
- A step that succeeded never runs again (the feed must not get an event twice): what is
  owed starts at the step that failed.
- One task's steps run in order. A move for a task that still owes steps joins the end of
  its line; a move that reads a task first catches up (`catch_up`), so it never builds on
  a record that is missing an owed write.
- A caller that hangs up mid-tail does not cut the tail short: it runs on, shielded.

What is owed lives in memory. A crash loses it; the start-up reconcile (services/recovery)
then rebuilds the broker from the repository, which covers that case.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from giobba_server.domain.errors import Unavailable
from giobba_server.waits import pause_after_error, raise_if_cancelling

log = logging.getLogger("giobba.mending")


@dataclass(frozen=True)
class Step:
    """One step of a tail. Safe to run again after it failed (never after it succeeded)."""

    what: str  # names the step in logs
    run: Callable[[], Awaitable[object]]


@dataclass
class _Line:
    """The steps one task still owes, and who is running them."""

    steps: list[Step] = field(default_factory=list)
    busy: asyncio.Lock = field(default_factory=asyncio.Lock)


class Mender:
    def __init__(self, base: float = 0.1, cap: float = 5.0) -> None:
        self._owed: dict[str, _Line] = {}  # insertion order: oldest debt first
        self._wake = asyncio.Event()
        self._inline: set[asyncio.Future[None]] = set()
        self._base = base
        self._cap = cap

    @property
    def owed(self) -> int:
        """How many tasks still owe steps."""
        return len(self._owed)

    async def carry(self, key: str, steps: Sequence[Step]) -> None:
        """Run `steps` for task `key` in order. Unavailable if they could not all run now;
        the rest is then owed and finished in the background."""
        if key in self._owed:  # behind an owed step: running ahead of it would reorder
            self._owe(key, steps)
            raise Unavailable(f"task {key}: an earlier move is still being recorded")
        running = asyncio.ensure_future(self._run(key, list(steps)))
        self._inline.add(running)
        running.add_done_callback(self._forget)
        await asyncio.shield(running)

    async def _run(self, key: str, steps: list[Step]) -> None:
        for i, step in enumerate(steps):
            try:
                await step.run()
            except Unavailable as exc:
                log.warning(
                    "task %s: %s failed (%s); finishing it in the background", key, step.what, exc
                )
                self._owe(key, steps[i:])
                raise

    def _forget(self, running: asyncio.Future[None]) -> None:
        self._inline.discard(running)
        if not running.cancelled():
            running.exception()  # retrieved: a caller that hung up is not told

    def _owe(self, key: str, steps: Iterable[Step]) -> None:
        self._owed.setdefault(key, _Line()).steps.extend(steps)
        self._wake.set()

    async def catch_up(self, keys: Iterable[str]) -> None:
        """Write what `keys` still owe, now, before a move reads them. Unavailable if it
        still cannot be written. A step must never call this (its own line is busy)."""
        for key in [k for k in keys if k in self._owed]:
            await self._drain(key)

    async def catch_up_all(self) -> None:
        await self.catch_up(list(self._owed))

    async def _drain(self, key: str) -> None:
        """Run `key`'s owed steps in order, dropping each once it succeeded."""
        line = self._owed.get(key)
        if line is None:
            return
        async with line.busy:
            while line.steps:
                await self._attempt(key, line.steps[0])
                line.steps.pop(0)
            if self._owed.get(key) is line:
                del self._owed[key]

    async def _attempt(self, key: str, step: Step) -> None:
        try:
            await step.run()
        except Unavailable:
            raise
        except Exception:  # retrying cannot mend a bug or a refused write: drop the step
            log.exception("task %s: %s failed for good; dropped", key, step.what)

    async def run(self) -> None:
        """Retry what is owed until it is all written; sleep on an event while nothing is."""
        delay = 0.0
        try:
            while True:
                if not self._owed:
                    raise_if_cancelling()
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                if await self._pass():
                    delay = 0.0
                    continue
                delay = min(max(delay * 2, self._base), self._cap)
                await pause_after_error(delay)
        finally:
            if self._owed:
                log.warning(
                    "stopping with %d tasks not fully recorded; start-up reconcile covers them",
                    len(self._owed),
                )

    async def _pass(self) -> bool:
        """Work through the owed lines, oldest first; False at the first step that fails."""
        while self._owed:
            key = next(iter(self._owed))
            try:
                await self._drain(key)
            except Unavailable as exc:
                log.warning("task %s: still not recorded (%s); retrying", key, exc)
                if key in self._owed:  # to the back: one stuck task must not block the rest
                    self._owed[key] = self._owed.pop(key)
                return False
        return True
