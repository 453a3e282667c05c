"""Client: the blocking twin of AsyncClient. It runs an AsyncClient on a private event
loop thread, so both share one implementation and behave the same."""

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Generator, Sequence
from typing import Any, TypeVar

from giobba_client.aio import DEFAULT_TIMEOUT, AsyncClient
from giobba_client.models import (
    Activity,
    Job,
    JobPage,
    RevokeResult,
    Task,
    TaskPage,
    TaskState,
    WaitResult,
    WorkerInfo,
)

T = TypeVar("T")


class Client:
    def __init__(self, server: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="giobba-client", daemon=True
        )
        self._thread.start()
        self._async = self._run(self._make(server, timeout))
        self.server = self._async.server

    @staticmethod
    async def _make(server: str | None, timeout: float) -> AsyncClient:
        return AsyncClient(server, timeout)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the client's loop and wait for it. If the wait is interrupted (Ctrl-C
        raises KeyboardInterrupt in the calling thread), the coroutine is cancelled and has
        ended before the interruption goes on: nothing is left running behind the caller's
        back (closing a stream mid-read would otherwise fail as 'already running')."""
        running: list[asyncio.Task[Any]] = []

        async def tracked() -> T:
            task = asyncio.current_task()
            assert task is not None
            running.append(task)
            return await coro

        future = asyncio.run_coroutine_threadsafe(tracked(), self._loop)
        try:
            return future.result()
        except BaseException:
            if not future.done():
                asyncio.run_coroutine_threadsafe(_cancel(running), self._loop).result()
            raise

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._async.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def add_task(self, name: str, payload: dict[str, Any] | None = None, **options: Any) -> Task:
        return self._run(self._async.add_task(name, payload, **options))

    def add_tasks(self, specs: Sequence[dict[str, Any]]) -> list[Task]:
        return self._run(self._async.add_tasks(specs))

    def get_task(self, task_id: str) -> Task:
        return self._run(self._async.get_task(task_id))

    def task_state(self, task_id: str) -> TaskState:
        return self._run(self._async.task_state(task_id))

    def list_tasks(self, **filters: Any) -> TaskPage:
        return self._run(self._async.list_tasks(**filters))

    def revoke_task(self, task_id: str, reason: str = "") -> RevokeResult:
        return self._run(self._async.revoke_task(task_id, reason))

    def kill_task(self, task_id: str, reason: str = "") -> Task:
        return self._run(self._async.kill_task(task_id, reason))

    def auto_task(self, task_id: str) -> Task:
        return self._run(self._async.auto_task(task_id))

    def wait_task(self, task_id: str, timeout: float = 60.0) -> WaitResult:
        return self._run(self._async.wait_task(task_id, timeout))

    def list_workers(self) -> list[WorkerInfo]:
        return self._run(self._async.list_workers())

    def watch_activities(
        self, from_cursor: int | None = None, **filters: Any
    ) -> Generator[Activity, None, None]:
        """See AsyncClient.watch_activities (filters, `resume=True`)."""
        stream = self._async.watch_activities(from_cursor, **filters)
        try:
            while True:
                try:
                    yield self._run(_next(stream))
                except StopAsyncIteration:
                    return
        finally:
            self._run(stream.aclose())

    def create_job(
        self, schedule: str, name: str, payload: dict[str, Any] | None = None, **options: Any
    ) -> Job:
        return self._run(self._async.create_job(schedule, name, payload, **options))

    def get_job(self, job_id: str, upcoming: int = 5) -> Job:
        return self._run(self._async.get_job(job_id, upcoming))

    def list_jobs(self, page_size: int = 0, page_token: str = "") -> JobPage:
        return self._run(self._async.list_jobs(page_size, page_token))

    def pause_job(self, job_id: str) -> Job:
        return self._run(self._async.pause_job(job_id))

    def resume_job(self, job_id: str) -> Job:
        return self._run(self._async.resume_job(job_id))

    def delete_job(self, job_id: str) -> None:
        self._run(self._async.delete_job(job_id))

    def trigger_job(self, job_id: str) -> Task:
        return self._run(self._async.trigger_job(job_id))


async def _next(stream: AsyncIterator[T]) -> T:
    return await anext(stream)


async def _cancel(running: list["asyncio.Task[Any]"]) -> None:
    """Cancel the tracked task and wait until it has ended. It is scheduled before this
    coroutine, so it has started (and registered itself) by the time this runs."""
    for task in running:
        task.cancel()
        await asyncio.wait([task])
