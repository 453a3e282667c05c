"""AsyncClient: one method per RPC, plain values in and out."""

import asyncio
import math
import os
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import grpc

from giobba_client import _convert as conv
from giobba_client._gen.giobba.v1 import job_service_pb2 as js
from giobba_client._gen.giobba.v1 import job_service_pb2_grpc as js_grpc
from giobba_client._gen.giobba.v1 import task_service_pb2 as ts
from giobba_client._gen.giobba.v1 import task_service_pb2_grpc as ts_grpc
from giobba_client._gen.giobba.v1 import worker_service_pb2_grpc as ws_grpc
from giobba_client._waits import pause_after_error
from giobba_client.errors import (
    DeadlineExceeded,
    GiobbaError,
    InvalidArgument,
    Unavailable,
    from_rpc_error,
)
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

DEFAULT_SERVER = "127.0.0.1:50051"
DEFAULT_TIMEOUT = 30.0
# The longest one WaitTask call waits on the server (its cap); longer waits loop.
MAX_WAIT = 300.0
MAX_MESSAGE = 64 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
    # Notice a dead or unreachable server within ~20 s, even on an idle channel.
    ("grpc.keepalive_time_ms", 10000),
    ("grpc.keepalive_timeout_ms", 10000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]
T = TypeVar("T")


class _Dropped(GiobbaError):
    """A stream cut by the transport (server gone mid-stream), not refused by the server."""


def default_server() -> str:
    return os.environ.get("GIOBBA_SERVER") or DEFAULT_SERVER


async def _rpc(call: Awaitable[T]) -> T:
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        raise from_rpc_error(exc) from None


class AsyncClient:
    """Talks to one giobba server. Use `async with AsyncClient(...) as client`."""

    def __init__(self, server: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0):
            raise InvalidArgument(f"timeout: must be a positive number of seconds, not {timeout}")
        self.server = server or default_server()
        self.timeout = timeout
        self.channel = grpc.aio.insecure_channel(self.server, options=CHANNEL_OPTIONS)
        self.tasks = ts_grpc.TaskServiceStub(self.channel)
        self.workers = ws_grpc.WorkerServiceStub(self.channel)
        self.jobs = js_grpc.JobServiceStub(self.channel)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close()

    async def _unary(
        self, method: Callable[..., Any], request: Any, timeout: float | None = None
    ) -> Any:
        return await _rpc(method(request, timeout=timeout or self.timeout))

    async def add_task(
        self, name: str, payload: dict[str, Any] | None = None, **options: Any
    ) -> Task:
        """Submit a task; options are those of `giobba_client._convert.spec`."""
        request = ts.AddTaskRequest(task=conv.spec(name, payload, **options))
        reply = await self._unary(self.tasks.AddTask, request)
        return conv.task(reply.task)

    async def add_tasks(self, specs: Iterable[dict[str, Any]]) -> list[Task]:
        """Submit a batch, all or nothing: each item holds `name`, `payload` and options."""
        items = [conv.spec(**item) for item in specs]
        reply = await self._unary(self.tasks.AddTasks, ts.AddTasksRequest(tasks=items))
        return [conv.task(t) for t in reply.tasks]

    async def get_task(self, task_id: str) -> Task:
        reply = await self._unary(self.tasks.GetTask, ts.GetTaskRequest(id=task_id))
        return conv.task(reply.task)

    async def task_state(self, task_id: str) -> TaskState:
        reply = await self._unary(self.tasks.GetTaskState, ts.GetTaskStateRequest(id=task_id))
        return conv.STATES[reply.state]

    async def list_tasks(
        self,
        *,
        states: Sequence[TaskState | str] = (),
        queue: str = "",
        name: str = "",
        parent_id: str = "",
        job_id: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> TaskPage:
        request = ts.ListTasksRequest(
            states=[conv.STATE_NUMBERS[TaskState(s)] for s in states],
            queue=queue,
            name=name,
            parent_id=parent_id,
            job_id=job_id,
            page_size=conv.int32(page_size, "page_size"),
            page_token=page_token,
        )
        reply = await self._unary(self.tasks.ListTasks, request)
        return TaskPage([conv.task(t) for t in reply.tasks], reply.next_page_token)

    async def revoke_task(self, task_id: str, reason: str = "") -> RevokeResult:
        reply = await self._unary(
            self.tasks.RevokeTask, ts.RevokeTaskRequest(id=task_id, reason=reason)
        )
        return RevokeResult(conv.task(reply.task), list(reply.revoked_children))

    async def kill_task(self, task_id: str, reason: str = "") -> Task:
        reply = await self._unary(
            self.tasks.KillTask, ts.KillTaskRequest(id=task_id, reason=reason)
        )
        return conv.task(reply.task)

    async def auto_task(self, task_id: str) -> Task:
        reply = await self._unary(self.tasks.AutoTask, ts.AutoTaskRequest(id=task_id))
        return conv.task(reply.task)

    async def wait_task(self, task_id: str, timeout: float = 60.0) -> WaitResult:
        """Wait until the task is terminal or `timeout` seconds pass (`done` says which);
        a zero timeout looks once and returns at once."""
        conv.span(timeout, "timeout", zero_ok=True)  # finite, not negative
        # The server waits at most MAX_WAIT per call: longer waits are a series of calls.
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = max(deadline - asyncio.get_running_loop().time(), 0.0)
            step = min(left, MAX_WAIT)
            request = ts.WaitTaskRequest(id=task_id, timeout=conv.span(step, "timeout", True))
            reply = await self._unary(self.tasks.WaitTask, request, timeout=step + 10)
            if reply.done or step >= left:
                return WaitResult(conv.task(reply.task), reply.done)

    async def list_workers(self) -> list[WorkerInfo]:
        reply = await self._unary(self.tasks.ListWorkers, ts.ListWorkersRequest())
        return [conv.worker(w) for w in reply.workers]

    async def watch_activities(
        self,
        from_cursor: int | None = None,
        *,
        queues: Sequence[str] = (),
        task_ids: Sequence[str] = (),
        job_id: str = "",
        states: Sequence[TaskState | str] = (),
        resume: bool = False,
        retry_cap: float = 2.0,
    ) -> AsyncGenerator[Activity, None]:
        """Replay from `from_cursor` (None: live only), then follow live.

        With `resume=True` a dropped stream (server restarting, network gone, the server
        stopping gracefully) is reopened from the cursor of the last event yielded, with
        a capped backoff, until the caller stops iterating: nothing is missed or repeated
        as long as the server still retains that cursor (a cursor older than the retained
        history raises FailedPrecondition). Before the first event of a live-only watch
        there is no cursor to resume from, so it resumes live-only.
        """
        cursor = from_cursor
        delay = 0.0
        while True:
            try:
                async for event in self._watch_once(cursor, queues, task_ids, job_id, states):
                    cursor, delay = event.cursor, 0.0
                    yield event
            except (Unavailable, DeadlineExceeded, _Dropped):
                if not resume:
                    raise
            else:
                if not resume:
                    return
            delay = min(max(delay * 2, 0.05), retry_cap)
            await pause_after_error(delay)

    async def _watch_once(
        self,
        from_cursor: int | None,
        queues: Sequence[str],
        task_ids: Sequence[str],
        job_id: str,
        states: Sequence[TaskState | str],
    ) -> AsyncGenerator[Activity, None]:
        request = ts.WatchActivitiesRequest(
            from_cursor=from_cursor or 0,
            live_only=from_cursor is None,
            queues=list(queues),
            task_ids=list(task_ids),
            job_id=job_id,
            states=[conv.STATE_NUMBERS[TaskState(s)] for s in states],
        )
        stream = self.tasks.WatchActivities(request)
        try:
            async for reply in stream:
                yield conv.activity(reply.activity)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL):
                raise _Dropped(exc.details() or exc.code().name) from None
            raise from_rpc_error(exc) from None
        finally:
            stream.cancel()

    async def watch_heartbeats(self) -> AsyncGenerator[WorkerInfo, None]:
        stream = self.tasks.WatchHeartbeats(ts.WatchHeartbeatsRequest())
        try:
            async for reply in stream:
                yield conv.worker(reply.worker)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
        finally:
            stream.cancel()

    # -- jobs ---------------------------------------------------------------------------

    async def create_job(
        self, schedule: str, name: str, payload: dict[str, Any] | None = None, **options: Any
    ) -> Job:
        """Create a cron job. Options: timezone, job_id, starts_at, expires_at (the job's
        end), missed_policy (COALESCE/SKIP/RUN_ALL), overlap_policy (ALLOW/SKIP),
        run_expiry, and the run template's options of `add_task` (queue, priority, ...)."""
        request = js.CreateJobRequest(job=conv.job_spec(schedule, name, payload, **options))
        reply = await self._unary(self.jobs.CreateJob, request)
        return conv.job(reply.job)

    async def get_job(self, job_id: str, upcoming: int = 5) -> Job:
        """The job, with its next `upcoming` fire times (0-100)."""
        request = js.GetJobRequest(id=job_id, upcoming=upcoming)
        reply = await self._unary(self.jobs.GetJob, request)
        return conv.job(reply.job, list(reply.upcoming))

    async def list_jobs(self, page_size: int = 0, page_token: str = "") -> JobPage:
        size = conv.int32(page_size, "page_size")
        request = js.ListJobsRequest(page_size=size, page_token=page_token)
        reply = await self._unary(self.jobs.ListJobs, request)
        return JobPage([conv.job(j) for j in reply.jobs], reply.next_page_token)

    async def pause_job(self, job_id: str) -> Job:
        reply = await self._unary(self.jobs.PauseJob, js.PauseJobRequest(id=job_id))
        return conv.job(reply.job)

    async def resume_job(self, job_id: str) -> Job:
        """Active again from now on; times missed while paused are not run."""
        reply = await self._unary(self.jobs.ResumeJob, js.ResumeJobRequest(id=job_id))
        return conv.job(reply.job)

    async def delete_job(self, job_id: str) -> None:
        """Delete the job; its runs stay (list them with `list_tasks(job_id=...)`)."""
        await self._unary(self.jobs.DeleteJob, js.DeleteJobRequest(id=job_id))

    async def trigger_job(self, job_id: str) -> Task:
        """One run now, outside the schedule."""
        reply = await self._unary(self.jobs.TriggerJob, js.TriggerJobRequest(id=job_id))
        return conv.task(reply.task)


__all__ = ["AsyncClient", "GiobbaError", "default_server"]
