"""TaskService: decode, call a service, encode."""

from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeAlias

from giobba_client._gen.giobba.v1 import task_pb2 as pb
from giobba_client._gen.giobba.v1 import task_service_pb2 as ts
from giobba_client._gen.giobba.v1 import task_service_pb2_grpc as ts_grpc
from giobba_server.api.convert import (
    PB_TO_STATE,
    activity_to_pb,
    opt_dur,
    spec_from_pb,
    task_to_pb,
    worker_to_pb,
)
from giobba_server.api.errors import streaming, unary
from giobba_server.domain.errors import InvalidArgument
from giobba_server.domain.ports import ActivityEvent, TaskFilter
from giobba_server.domain.spec import check_id, check_reason
from giobba_server.domain.task import Task, TaskState
from giobba_server.services import control, queries, submit, transitions
from giobba_server.services.context import Deps

# grpc ships no type information: the context is typed as Any.
Ctx: TypeAlias = Any
MAX_WAIT = 300.0  # WaitTask: the default and the cap (see task_service.proto)


def _states(values: Sequence[int], field: str) -> frozenset[TaskState]:
    states: set[TaskState] = set()
    for i, value in enumerate(values):
        if value not in PB_TO_STATE:
            raise InvalidArgument(f"{field}[{i}]", f"{value} is not a task state")
        states.add(PB_TO_STATE[value])
    return frozenset(states)


class TaskServicer(ts_grpc.TaskServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    def _pb(self, task: Task) -> pb.Task:
        return task_to_pb(task, self._deps.clock())

    @unary
    async def AddTask(self, request: ts.AddTaskRequest, context: Ctx) -> ts.AddTaskResponse:
        if not request.HasField("task"):
            raise InvalidArgument("task", "is required")
        [task] = await submit.submit(self._deps, [spec_from_pb(request.task)])
        return ts.AddTaskResponse(task=self._pb(task))

    @unary
    async def AddTasks(self, request: ts.AddTasksRequest, context: Ctx) -> ts.AddTasksResponse:
        specs = [spec_from_pb(s, f"tasks[{i}].") for i, s in enumerate(request.tasks)]
        tasks = await submit.submit(self._deps, specs, batch=True)
        return ts.AddTasksResponse(tasks=[self._pb(t) for t in tasks])

    @unary
    async def GetTask(self, request: ts.GetTaskRequest, context: Ctx) -> ts.GetTaskResponse:
        task = await queries.get_task(self._deps, check_id("id", request.id))
        return ts.GetTaskResponse(task=self._pb(task))

    @unary
    async def ListTasks(self, request: ts.ListTasksRequest, context: Ctx) -> ts.ListTasksResponse:
        flt = TaskFilter(
            states=_states(list(request.states), "states"),
            queue=request.queue,
            name=request.name,
            parent_id=check_id("parent_id", request.parent_id) if request.parent_id else "",
            job_id=check_id("job_id", request.job_id) if request.job_id else "",
        )
        page = await queries.list_tasks(self._deps, flt, request.page_size, request.page_token)
        return ts.ListTasksResponse(
            tasks=[self._pb(t) for t in page.tasks], next_page_token=page.next_token
        )

    @unary
    async def GetTaskState(
        self, request: ts.GetTaskStateRequest, context: Ctx
    ) -> ts.GetTaskStateResponse:
        task = await queries.get_task(self._deps, check_id("id", request.id))
        return ts.GetTaskStateResponse(state=self._pb(task).state)

    @unary
    async def RevokeTask(
        self, request: ts.RevokeTaskRequest, context: Ctx
    ) -> ts.RevokeTaskResponse:
        task, children = await transitions.revoke(
            self._deps, check_id("id", request.id), check_reason(request.reason)
        )
        return ts.RevokeTaskResponse(task=self._pb(task), revoked_children=children)

    @unary
    async def KillTask(self, request: ts.KillTaskRequest, context: Ctx) -> ts.KillTaskResponse:
        task = await control.kill_task(
            self._deps, check_id("id", request.id), check_reason(request.reason)
        )
        return ts.KillTaskResponse(task=self._pb(task))

    @unary
    async def AutoTask(self, request: ts.AutoTaskRequest, context: Ctx) -> ts.AutoTaskResponse:
        task = await control.auto_task(self._deps, check_id("id", request.id))
        return ts.AutoTaskResponse(task=self._pb(task))

    @unary
    async def WaitTask(self, request: ts.WaitTaskRequest, context: Ctx) -> ts.WaitTaskResponse:
        timeout = opt_dur("timeout", request, "timeout")  # 0 means "just look"
        seconds = min(timeout.total_seconds(), MAX_WAIT) if timeout is not None else MAX_WAIT
        remaining = context.time_remaining()
        if remaining is not None:  # answer before the caller's deadline, not after it
            seconds = min(seconds, max(remaining - 0.2, 0.0))
        task, done = await queries.wait_task(self._deps, check_id("id", request.id), seconds)
        return ts.WaitTaskResponse(task=self._pb(task), done=done)

    @streaming
    async def WatchActivities(
        self, request: ts.WatchActivitiesRequest, context: Ctx
    ) -> AsyncIterator[ts.WatchActivitiesResponse]:
        start = None if request.live_only else request.from_cursor
        states = _states(list(request.states), "states")
        queues = set(request.queues)
        ids = {check_id(f"task_ids[{i}]", t) for i, t in enumerate(request.task_ids)}

        def wanted(e: ActivityEvent) -> bool:
            return (
                (not queues or e.queue in queues)
                and (not ids or e.task_id in ids)
                and (not request.job_id or e.job_id == request.job_id)
                and (not states or e.new_state in states)
            )

        async for event in self._deps.feed.watch(start):
            if wanted(event):
                yield ts.WatchActivitiesResponse(activity=activity_to_pb(event))

    @streaming
    async def WatchHeartbeats(
        self, request: ts.WatchHeartbeatsRequest, context: Ctx
    ) -> AsyncIterator[ts.WatchHeartbeatsResponse]:
        async for status in self._deps.registry.watch():
            yield ts.WatchHeartbeatsResponse(worker=worker_to_pb(status))

    @unary
    async def ListWorkers(
        self, request: ts.ListWorkersRequest, context: Ctx
    ) -> ts.ListWorkersResponse:
        workers = await self._deps.registry.alive()
        return ts.ListWorkersResponse(workers=[worker_to_pb(w) for w in workers])
