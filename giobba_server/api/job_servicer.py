"""JobService: decode, call services/jobs.py, encode."""

from typing import Any, TypeAlias

from giobba_client._gen.giobba.v1 import job_service_pb2 as js
from giobba_client._gen.giobba.v1 import job_service_pb2_grpc as js_grpc
from giobba_server.api.convert import task_to_pb, ts
from giobba_server.api.errors import unary
from giobba_server.api.job_convert import job_spec_from_pb, job_to_pb
from giobba_server.domain.errors import InvalidArgument
from giobba_server.domain.spec import check_id
from giobba_server.services import jobs
from giobba_server.services.context import Deps

# grpc ships no type information: the context is typed as Any.
Ctx: TypeAlias = Any


class JobServicer(js_grpc.JobServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    @unary
    async def CreateJob(self, request: js.CreateJobRequest, context: Ctx) -> js.CreateJobResponse:
        if not request.HasField("job"):
            raise InvalidArgument("job", "is required")
        job = await jobs.create_job(self._deps, job_spec_from_pb(request.job))
        return js.CreateJobResponse(job=job_to_pb(job))

    @unary
    async def GetJob(self, request: js.GetJobRequest, context: Ctx) -> js.GetJobResponse:
        job = await jobs.get_job(self._deps, check_id("id", request.id))
        times = jobs.upcoming(job, request.upcoming)
        return js.GetJobResponse(
            job=job_to_pb(job), upcoming=[s for t in times if (s := ts(t)) is not None]
        )

    @unary
    async def ListJobs(self, request: js.ListJobsRequest, context: Ctx) -> js.ListJobsResponse:
        page = await jobs.list_jobs(self._deps, request.page_size, request.page_token)
        return js.ListJobsResponse(
            jobs=[job_to_pb(j) for j in page.jobs], next_page_token=page.next_token
        )

    @unary
    async def PauseJob(self, request: js.PauseJobRequest, context: Ctx) -> js.PauseJobResponse:
        job = await jobs.pause_job(self._deps, check_id("id", request.id))
        return js.PauseJobResponse(job=job_to_pb(job))

    @unary
    async def ResumeJob(self, request: js.ResumeJobRequest, context: Ctx) -> js.ResumeJobResponse:
        job = await jobs.resume_job(self._deps, check_id("id", request.id))
        return js.ResumeJobResponse(job=job_to_pb(job))

    @unary
    async def DeleteJob(self, request: js.DeleteJobRequest, context: Ctx) -> js.DeleteJobResponse:
        await jobs.delete_job(self._deps, check_id("id", request.id))
        return js.DeleteJobResponse()

    @unary
    async def TriggerJob(
        self, request: js.TriggerJobRequest, context: Ctx
    ) -> js.TriggerJobResponse:
        task = await jobs.trigger_job(self._deps, check_id("id", request.id))
        return js.TriggerJobResponse(task=task_to_pb(task, self._deps.clock()))
