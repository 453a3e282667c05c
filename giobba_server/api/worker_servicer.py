"""WorkerService: decode, call a service, encode."""

from collections.abc import AsyncIterator
from typing import Any, TypeAlias

from giobba_client._gen.giobba.v1 import worker_service_pb2 as ws
from giobba_client._gen.giobba.v1 import worker_service_pb2_grpc as ws_grpc
from giobba_server.api.convert import dur, opt_dur, task_to_pb, ts, worker_from_pb
from giobba_server.api.errors import streaming, unary
from giobba_server.api.shutdown import unless_stopping
from giobba_server.domain.errors import Unavailable
from giobba_server.domain.ports import CancelReason
from giobba_server.domain.spec import check_id, check_worker_id
from giobba_server.services import leasing
from giobba_server.services.context import Deps

# grpc ships no type information: the context is typed as Any.
Ctx: TypeAlias = Any
DEFAULT_WAIT = 30.0

CANCEL_TO_PB = {
    CancelReason.KILLED: ws.CANCEL_REASON_KILLED,
    CancelReason.TIMEOUT: ws.CANCEL_REASON_TIMEOUT,
    CancelReason.LEASE_LOST: ws.CANCEL_REASON_LEASE_LOST,
}


class WorkerServicer(ws_grpc.WorkerServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    @unary
    async def LeaseTasks(
        self, request: ws.LeaseTasksRequest, context: Ctx
    ) -> ws.LeaseTasksResponse:
        wait = opt_dur("wait", request, "wait")
        seconds = wait.total_seconds() if wait is not None else DEFAULT_WAIT
        remaining = context.time_remaining()
        if remaining is not None:  # return empty before the caller's deadline hits
            seconds = min(seconds, max(remaining - 0.5, 0.0))
        check_worker_id("worker_id", request.worker_id)
        if request.HasField("worker") and request.worker.id:
            check_worker_id("worker.id", request.worker.id)
            status = worker_from_pb(request.worker, self._deps.clock())
            ttl = int(self._deps.settings.worker_ttl.total_seconds() * 1000)
            await self._deps.registry.beat(status, ttl)
        polling = leasing.lease(
            self._deps, request.worker_id, list(request.queues), request.max_tasks, seconds
        )
        # A stopping server answers empty at once; claims made meanwhile are handed back.
        leased = await unless_stopping(polling, self._deps.stopping) or []
        now = self._deps.clock()
        lease = self._deps.settings.lease
        return ws.LeaseTasksResponse(
            tasks=[
                ws.LeasedTask(
                    task=task_to_pb(item.task, now),
                    lease_token=item.token,
                    lease_expires_at=ts(item.deadline),
                    lease_duration=dur(lease),
                    attempt=item.task.attempts,
                    timeout=dur(item.timeout),
                )
                for item in leased
            ]
        )

    @unary
    async def Heartbeat(self, request: ws.HeartbeatRequest, context: Ctx) -> ws.HeartbeatResponse:
        check_worker_id("worker.id", request.worker.id)
        status = worker_from_pb(request.worker, self._deps.clock())
        leases = [(lease.task_id, lease.lease_token) for lease in request.leases]
        renewed, cancelled = await leasing.heartbeat(self._deps, status, leases)
        return ws.HeartbeatResponse(
            renewed_task_ids=renewed,
            cancellations=[
                ws.Cancellation(task_id=task_id, reason=CANCEL_TO_PB[reason])
                for task_id, reason in cancelled
            ],
            heartbeat_interval=dur(self._deps.settings.heartbeat_interval),
            lease_duration=dur(self._deps.settings.lease),
        )

    @unary
    async def CompleteTask(
        self, request: ws.CompleteTaskRequest, context: Ctx
    ) -> ws.CompleteTaskResponse:
        task = await leasing.complete_task(
            self._deps, check_id("task_id", request.task_id), request.lease_token, request.result
        )
        return ws.CompleteTaskResponse(task=task_to_pb(task, self._deps.clock()))

    @unary
    async def FailTask(self, request: ws.FailTaskRequest, context: Ctx) -> ws.FailTaskResponse:
        task = await leasing.fail_task(
            self._deps,
            check_id("task_id", request.task_id),
            request.lease_token,
            request.error,
            request.no_retry,
        )
        return ws.FailTaskResponse(task=task_to_pb(task, self._deps.clock()))

    @unary
    async def ReleaseTask(
        self, request: ws.ReleaseTaskRequest, context: Ctx
    ) -> ws.ReleaseTaskResponse:
        task = await leasing.release_task(
            self._deps, check_id("task_id", request.task_id), request.lease_token
        )
        return ws.ReleaseTaskResponse(task=task_to_pb(task, self._deps.clock()))

    @streaming
    async def WatchCancellations(
        self, request: ws.WatchCancellationsRequest, context: Ctx
    ) -> AsyncIterator[ws.WatchCancellationsResponse]:
        check_worker_id("worker_id", request.worker_id)
        hub = self._deps.cancels
        if hub is None:
            raise Unavailable("cancel push is not running on this server; rely on heartbeats")
        async for notice in hub.watch(request.worker_id):
            cancellation = ws.Cancellation(
                task_id=notice.task_id, reason=CANCEL_TO_PB[notice.reason]
            )
            yield ws.WatchCancellationsResponse(cancellation=cancellation)


__all__ = ["WorkerServicer"]
