"""Callback policy and the delivery loop, on an in-memory outbox and a mock transport."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from giobba_server.broker.memory_lock import MemoryFireLock
from giobba_server.domain.callback import (
    CallbackStatus,
    OutboxEntry,
    delivery_id,
    entry_for,
    next_delay,
    retryable,
    signature,
    verify,
)
from giobba_server.domain.task import Task, TaskState
from giobba_server.scheduler.callbacks import CallbackLoop, DeliverySettings, claim_key

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def task(state: TaskState = TaskState.COMPLETED, **changes: object) -> Task:
    base = Task(
        id="t-1",
        name="echo",
        payload="{}",
        queue="default",
        state=state,
        priority=0,
        eta=T0,
        created_at=T0,
        updated_at=T0,
        seq=1,
        result='{"n": 12345678901234567890}',
        error="boom",
        callback="https://example.com/ok",
        callback_err="https://example.com/err",
        version=3,
    )
    return base.evolve(**changes)


# -- policy -------------------------------------------------------------------------------


def test_which_url_each_end_posts() -> None:
    done = entry_for(task(), 1)
    assert done is not None and done.url == "https://example.com/ok"
    assert json.loads(done.body)["result"] == {"n": 12345678901234567890}
    for state in (TaskState.FAILED, TaskState.KILLED):
        failed = entry_for(task(state), 1)
        assert failed is not None and failed.url == "https://example.com/err"
        assert json.loads(failed.body)["error"] == "boom"
    assert entry_for(task(TaskState.REVOKED), 1) is None
    assert entry_for(task(callback=""), 1) is None


def test_delivery_id_is_stable_per_terminal_move() -> None:
    assert delivery_id(task()) == delivery_id(task())
    assert delivery_id(task()) != delivery_id(task(version=4))
    assert delivery_id(task()) != delivery_id(task(TaskState.FAILED))


def test_hmac_signature_verifies_against_the_body() -> None:
    body = b'{"id":"t-1"}'
    header = signature("secret", body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    # Known answer: HMAC-SHA256("secret", body), computed independently.
    assert header == "sha256=" + __import__("hmac").new(b"secret", body, "sha256").hexdigest()
    assert verify("secret", body, header)
    assert not verify("secret", body + b" ", header)
    assert not verify("other", body, header)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(None, True), (500, True), (503, True), (429, True), (404, False), (400, False)],
)
def test_what_is_retried(status: int | None, expected: bool) -> None:
    assert retryable(status) is expected


def test_backoff_grows_is_capped_and_honours_retry_after() -> None:
    base, cap = timedelta(seconds=1), timedelta(seconds=8)
    for attempts, low, high in [(1, 0.5, 1), (2, 1, 2), (3, 2, 4), (10, 4, 8)]:
        delay = next_delay(attempts, base, cap).total_seconds()
        assert low <= delay <= high
    assert next_delay(1, base, cap, retry_after=5).total_seconds() == 5
    assert next_delay(1, base, cap, retry_after=500) == cap


# -- the loop -------------------------------------------------------------------------------


class MemoryOutbox:
    def __init__(self) -> None:
        self.entries: dict[str, OutboxEntry] = {}

    async def add(self, entry: OutboxEntry) -> None:
        self.entries.setdefault(entry.id, entry)

    async def get(self, entry_id: str) -> OutboxEntry | None:
        return self.entries.get(entry_id)

    async def update(self, entry: OutboxEntry) -> None:
        self.entries[entry.id] = entry

    async def remove(self, entry_id: str) -> None:
        self.entries.pop(entry_id, None)

    async def pending(self, limit: int) -> Sequence[OutboxEntry]:
        return sorted(self.entries.values(), key=lambda e: e.due_ms)[:limit]


class Recorder:
    def __init__(self) -> None:
        self.outcomes: dict[str, tuple[str, int, str]] = {}
        self.changed = asyncio.Event()

    async def record_callback(
        self, task_id: str, status: CallbackStatus, attempts: int, error: str
    ) -> None:
        self.outcomes[task_id] = (str(status), attempts, error)
        self.changed.set()

    async def settled(self, task_id: str) -> tuple[str, int, str]:
        async with asyncio.timeout(10):
            while self.outcomes.get(task_id, ("PENDING",))[0] == "PENDING":
                self.changed.clear()
                await self.changed.wait()
        return self.outcomes[task_id]


SETTINGS = DeliverySettings(
    secret="k",
    max_attempts=3,
    retry_base=timedelta(milliseconds=10),
    retry_cap=timedelta(milliseconds=40),
    read_timeout=timedelta(milliseconds=200),
    connect_timeout=timedelta(milliseconds=200),
    concurrency=4,
)


class Harness:
    def __init__(self, answer: Callable[[httpx.Request], httpx.Response]) -> None:
        self.requests: list[httpx.Request] = []
        self.outbox = MemoryOutbox()
        self.recorder = Recorder()
        self.lock = MemoryFireLock()

        def handler(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return answer(request)

        self.loop = CallbackLoop(
            self.outbox,
            self.recorder,
            self.lock,
            SETTINGS,
            transport=httpx.MockTransport(handler),
        )

    async def send(self, t: Task) -> OutboxEntry:
        entry = entry_for(t, 0)
        assert entry is not None
        await self.loop.stage(entry)
        self.loop.ready(entry)
        return entry


@contextlib.asynccontextmanager
async def running(h: Harness) -> AsyncIterator[Harness]:
    loop = asyncio.create_task(h.loop.run())
    try:
        yield h
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


def statuses(*codes: int) -> Callable[[httpx.Request], httpx.Response]:
    answers = list(codes)

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(answers.pop(0) if len(answers) > 1 else answers[0])

    return answer


async def test_retries_5xx_then_delivers_with_one_id() -> None:
    async with running(Harness(statuses(500, 503, 200))) as h:
        entry = await h.send(task())
        assert await h.recorder.settled("t-1") == ("DELIVERED", 3, "")
    assert [r.headers["giobba-delivery-id"] for r in h.requests] == [entry.id] * 3
    assert [r.headers["giobba-attempt"] for r in h.requests] == ["1", "2", "3"]
    assert all(verify("k", r.content, r.headers["giobba-signature"]) for r in h.requests)
    assert h.outbox.entries == {}


async def test_4xx_is_final_and_attempts_run_out() -> None:
    answer = lambda r: httpx.Response(404 if r.url.path == "/ok" else 500)  # noqa: E731
    async with running(Harness(answer)) as h:
        await h.send(task())
        await h.send(task(TaskState.FAILED, id="t-2"))
        assert await h.recorder.settled("t-1") == ("FAILED", 1, "HTTP 404")
        assert await h.recorder.settled("t-2") == ("FAILED", 3, "HTTP 500")
    assert h.outbox.entries == {}


async def test_network_errors_are_retried() -> None:
    calls = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(204)

    async with running(Harness(answer)) as h:
        await h.send(task())
        assert await h.recorder.settled("t-1") == ("DELIVERED", 2, "")


async def test_an_entry_left_in_the_outbox_is_delivered_at_start() -> None:
    h = Harness(statuses(200))
    left = entry_for(task(), 0)
    assert left is not None
    await h.outbox.add(replace(left, attempts=1, last_error="HTTP 500"))
    async with running(h):
        assert await h.recorder.settled("t-1") == ("DELIVERED", 2, "")


async def test_an_attempt_claimed_elsewhere_is_left_alone() -> None:
    h = Harness(statuses(200))
    left = entry_for(task(), 0)
    assert left is not None
    await h.outbox.add(left)
    assert await h.lock.acquire(claim_key(left.id, 1), 60_000)  # another server's claim
    async with running(h):
        other = await h.send(task(id="t-2"))
        assert await h.recorder.settled("t-2") == ("DELIVERED", 1, "")
    assert [r.headers["giobba-delivery-id"] for r in h.requests] == [other.id]
    assert left.id in h.outbox.entries
