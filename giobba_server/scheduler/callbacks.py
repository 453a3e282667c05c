"""The callback delivery loop: POST what the outbox holds, off every worker's path.

How an entry moves:

1. `stage` (on the server that made the terminal move, before the move is saved): claim
   attempt 1 on the fire lock, then write the entry to the outbox. A crash from here on
   leaves the entry behind, and it is delivered after the restart (or by another server
   once the claim lapses).
2. `ready` (once the move is saved): the entry joins this loop's timer heap, due now, and
   the loop wakes (an asyncio.Event, no polling).
3. Each attempt runs in a task of its own, at most `concurrency` at a time, with connect
   and read timeouts, so a receiver that never answers holds one slot for one read
   timeout and delays nobody else. Outcomes: 2xx -> removed, DELIVERED; network error,
   5xx or 429 with attempts left -> attempts+1 and a due time after an exponential
   backoff, written back; anything else -> removed, FAILED. The outcome goes onto the task
   (status, attempts, last error) without touching its state.
4. Attempts after the first are claimed on the fire lock under (delivery id, attempt),
   then the entry is re-read by id: an entry settled or advanced meanwhile is dropped.

The loop sleeps until the earliest due retry or the next rescan, whichever is first. A
rescan reads the outbox's earliest entries: at start-up (what a crash left behind) and
then every claim period, for entries whose server died (their claims lapse by then).
"""

import asyncio
import contextlib
import functools
import heapq
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta

import httpx

from giobba_server.domain.callback import (
    ATTEMPT_HEADER,
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    CallbackStatus,
    OutboxEntry,
    delivered,
    next_delay,
    retryable,
    short_error,
    signature,
)
from giobba_server.domain.clock import now_ms
from giobba_server.domain.errors import GiobbaError
from giobba_server.domain.job_ports import FireLock
from giobba_server.domain.outbox import CallbackRecorder, Outbox

log = logging.getLogger("giobba.callbacks")

RESCAN_BATCH = 1000
USER_AGENT = "giobba-callbacks/0.1"


@dataclass(frozen=True)
class DeliverySettings:
    secret: str = ""
    max_attempts: int = 8
    connect_timeout: timedelta = timedelta(seconds=5)
    read_timeout: timedelta = timedelta(seconds=10)
    retry_base: timedelta = timedelta(seconds=1)
    retry_cap: timedelta = timedelta(minutes=5)
    concurrency: int = 32

    @property
    def claim_ms(self) -> int:
        """How long one attempt's claim holds: both timeouts twice over, plus slack for
        writing the outcome. A server that died mid-attempt is replaced after this."""
        seconds = 2 * (self.connect_timeout + self.read_timeout).total_seconds() + 5
        return int(seconds * 1000)


@dataclass(frozen=True)
class Attempt:
    """What one POST came to: an HTTP status, or None with the network error."""

    status: int | None
    error: str = ""
    retry_after: float | None = None


def claim_key(entry_id: str, attempt: int) -> str:
    return f"giobba:callback:{entry_id}:{attempt}"


Observer = Callable[[OutboxEntry, Attempt, CallbackStatus, float], None]


class CallbackLoop:
    def __init__(
        self,
        outbox: Outbox,
        recorder: CallbackRecorder,
        lock: FireLock,
        settings: DeliverySettings,
        *,
        clock: Callable[[], int] = now_ms,
        observe: Observer | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._outbox = outbox
        self._recorder = recorder
        self._lock = lock
        self._settings = settings
        self._clock = clock
        self._observe = observe
        self._transport = transport
        self._heap: list[tuple[int, str]] = []
        self._known: dict[str, OutboxEntry] = {}  # in the heap, by id
        self._claimed: set[str] = set()  # ids whose next attempt this server holds
        self._running: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._http: httpx.AsyncClient | None = None

    # -- called by the transitions ------------------------------------------------------

    async def stage(self, entry: OutboxEntry) -> None:
        """Claim the first attempt, then persist the entry (before the terminal save)."""
        if await self._lock.acquire(claim_key(entry.id, 1), self._settings.claim_ms):
            self._claimed.add(entry.id)
        await self._outbox.add(entry)

    def ready(self, entry: OutboxEntry) -> None:
        """The terminal move is saved: deliver now."""
        self._push(entry)
        self._wake.set()

    # -- the loop -----------------------------------------------------------------------

    async def run(self) -> None:
        timeout = httpx.Timeout(
            self._settings.read_timeout.total_seconds(),
            connect=self._settings.connect_timeout.total_seconds(),
        )
        limits = httpx.Limits(max_connections=self._settings.concurrency)
        self._http = httpx.AsyncClient(
            timeout=timeout,
            limits=limits,
            transport=self._transport,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )
        rescan_at = 0
        try:
            while True:
                now = self._clock()
                if now >= rescan_at:
                    rescan_at = now + await self._rescan()
                self._dispatch(self._clock())
                await self._sleep(rescan_at)
        finally:
            for task in self._running.values():
                task.cancel()
            await asyncio.gather(*self._running.values(), return_exceptions=True)
            await self._http.aclose()

    async def _rescan(self) -> int:
        """Read the outbox; returns the milliseconds until the next rescan."""
        try:
            entries = await self._outbox.pending(RESCAN_BATCH)
        except GiobbaError as exc:
            log.warning("callback outbox unreadable: %s", exc)
            return 1000
        for entry in entries:
            if entry.id not in self._running:
                self._push(entry)
        # A full batch means more are waiting: come back once these are under way.
        return 1000 if len(entries) == RESCAN_BATCH else self._settings.claim_ms

    def _push(self, entry: OutboxEntry) -> None:
        known = self._known.get(entry.id)
        if known is not None and known.attempts >= entry.attempts:
            return
        self._known[entry.id] = entry
        heapq.heappush(self._heap, (entry.due_ms, entry.id))

    def _dispatch(self, now: int) -> None:
        while self._heap and len(self._running) < self._settings.concurrency:
            due, entry_id = self._heap[0]
            entry = self._known.get(entry_id)
            if entry is None or entry.due_ms != due or entry_id in self._running:
                heapq.heappop(self._heap)  # superseded by a later push, or in flight
                continue
            if due > now:
                return
            heapq.heappop(self._heap)
            del self._known[entry_id]
            task = asyncio.create_task(self._attempt(entry), name=f"callback-{entry_id}")
            self._running[entry_id] = task
            task.add_done_callback(functools.partial(self._finished, entry_id))

    def _finished(self, entry_id: str, _: "asyncio.Task[None]") -> None:
        self._running.pop(entry_id, None)
        self._wake.set()  # a slot is free

    async def _sleep(self, rescan_at: int) -> None:
        until = rescan_at
        if self._heap and len(self._running) < self._settings.concurrency:
            until = min(until, self._heap[0][0])
        delay = max(until - self._clock(), 0) / 1000
        self._wake.clear()
        if delay > 0:
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that
            # arrives as the event is set, and the loop would outlive stop().
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    # -- one attempt ----------------------------------------------------------------------

    async def _attempt(self, entry: OutboxEntry) -> None:
        try:
            current = await self._claim(entry)
            if current is not None:
                await self._deliver(current)
        except GiobbaError as exc:
            # The outbox or the repository is down: the entry stays stored; the claim
            # lapses and a rescan tries again.
            log.warning("callback %s for task %s: %s", entry.id, entry.task_id, exc)

    async def _claim(self, entry: OutboxEntry) -> OutboxEntry | None:
        attempt = entry.attempts + 1
        if entry.id in self._claimed and attempt == 1:
            self._claimed.discard(entry.id)
            return entry
        if not await self._lock.acquire(claim_key(entry.id, attempt), self._settings.claim_ms):
            return None  # another server makes this attempt
        current = await self._outbox.get(entry.id)
        if current is None or current.attempts != entry.attempts:
            return None  # settled or advanced meanwhile
        return current

    async def _deliver(self, entry: OutboxEntry) -> None:
        started = self._clock()
        outcome = await self._post(entry)
        attempts = entry.attempts + 1
        now = self._clock()
        if delivered(outcome.status):
            status = CallbackStatus.DELIVERED
            await self._outbox.remove(entry.id)
            await self._recorder.record_callback(entry.task_id, status, attempts, "")
        elif retryable(outcome.status) and attempts < self._settings.max_attempts:
            status = CallbackStatus.PENDING
            delay = next_delay(
                attempts, self._settings.retry_base, self._settings.retry_cap, outcome.retry_after
            )
            later = replace(
                entry,
                attempts=attempts,
                due_ms=now + int(delay.total_seconds() * 1000),
                last_error=outcome.error,
            )
            await self._outbox.update(later)
            await self._recorder.record_callback(entry.task_id, status, attempts, outcome.error)
            self._push(later)
        else:
            status = CallbackStatus.FAILED
            await self._outbox.remove(entry.id)
            await self._recorder.record_callback(entry.task_id, status, attempts, outcome.error)
        log.info(
            "callback %s task=%s attempt=%d outcome=%s %s",
            entry.id,
            entry.task_id,
            attempts,
            status.value,
            outcome.error or outcome.status,
        )
        if self._observe is not None:
            self._observe(entry, outcome, status, (now - started) / 1000)

    async def _post(self, entry: OutboxEntry) -> Attempt:
        assert self._http is not None
        payload = entry.body.encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            DELIVERY_HEADER: entry.id,
            ATTEMPT_HEADER: str(entry.attempts + 1),
            EVENT_HEADER: entry.event,
        }
        if self._settings.secret:
            headers[SIGNATURE_HEADER] = signature(self._settings.secret, payload)
        try:
            reply = await self._http.post(entry.url, content=payload, headers=headers)
        except httpx.TimeoutException as exc:
            return Attempt(None, short_error(f"timeout: {type(exc).__name__}"))
        except httpx.HTTPError as exc:
            return Attempt(None, short_error(f"{type(exc).__name__}: {exc}"))
        error = "" if delivered(reply.status_code) else f"HTTP {reply.status_code}"
        return Attempt(reply.status_code, error, _retry_after(reply.headers.get("Retry-After")))


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is ignored: backoff applies)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
