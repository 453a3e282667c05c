"""Protobuf <-> domain for jobs, beside convert.py's tasks."""

from giobba_client._gen.giobba.v1 import job_service_pb2 as js
from giobba_client._gen.giobba.v1 import task_pb2 as pb
from giobba_server.api.convert import dur, opt_dur, opt_ts, spec_from_pb, ts
from giobba_server.domain.errors import InvalidArgument
from giobba_server.domain.job import Job, JobSpec, MissedPolicy, OverlapPolicy
from giobba_server.domain.spec import TaskSpec
from giobba_server.domain.task import StartMode

MISSED_TO_PB = {
    MissedPolicy.COALESCE: js.MISSED_POLICY_COALESCE,
    MissedPolicy.SKIP: js.MISSED_POLICY_SKIP,
    MissedPolicy.RUN_ALL: js.MISSED_POLICY_RUN_ALL,
}
PB_TO_MISSED: dict[int, MissedPolicy] = {
    js.MISSED_POLICY_UNSPECIFIED: MissedPolicy.COALESCE,
    **{int(v): k for k, v in MISSED_TO_PB.items()},
}
OVERLAP_TO_PB = {
    OverlapPolicy.ALLOW: js.OVERLAP_POLICY_ALLOW,
    OverlapPolicy.SKIP: js.OVERLAP_POLICY_SKIP,
}
PB_TO_OVERLAP: dict[int, OverlapPolicy] = {
    js.OVERLAP_POLICY_UNSPECIFIED: OverlapPolicy.ALLOW,
    **{int(v): k for k, v in OVERLAP_TO_PB.items()},
}


def job_spec_from_pb(message: js.JobSpec) -> JobSpec:
    if not message.HasField("task"):
        raise InvalidArgument("job.task", "is required")
    if message.missed_policy not in PB_TO_MISSED:
        raise InvalidArgument("job.missed_policy", f"{message.missed_policy} is not a policy")
    if message.overlap_policy not in PB_TO_OVERLAP:
        raise InvalidArgument("job.overlap_policy", f"{message.overlap_policy} is not a policy")
    return JobSpec(
        task=spec_from_pb(message.task, "job.task."),
        schedule=message.schedule,
        timezone=message.timezone,
        id=message.id,
        starts_at=opt_ts("job.starts_at", message, "starts_at"),
        expires_at=opt_ts("job.expires_at", message, "expires_at"),
        missed_policy=PB_TO_MISSED[message.missed_policy],
        overlap_policy=PB_TO_OVERLAP[message.overlap_policy],
        run_expiry=opt_dur("job.run_expiry", message, "run_expiry"),
    )


def template_to_pb(spec: TaskSpec) -> pb.TaskSpec:
    return pb.TaskSpec(
        name=spec.name,
        payload=spec.payload,
        queue=spec.queue,
        priority=spec.priority,
        start_mode=pb.START_MODE_MANUAL
        if spec.start_mode is StartMode.MANUAL
        else pb.START_MODE_AUTO,
        max_retries=spec.max_retries,
        callback=spec.callback,
        callback_err=spec.callback_err,
        timeout=dur(spec.timeout),
        retry_backoff=dur(spec.retry_backoff),
    )


def job_to_pb(job: Job) -> js.Job:
    return js.Job(
        id=job.id,
        schedule=job.schedule,
        timezone=job.timezone,
        task=template_to_pb(job.task),
        starts_at=ts(job.starts_at),
        expires_at=ts(job.expires_at),
        missed_policy=MISSED_TO_PB[job.missed_policy],
        overlap_policy=OVERLAP_TO_PB[job.overlap_policy],
        run_expiry=dur(job.run_expiry),
        is_active=job.is_active,
        last_execution=ts(job.last_execution),
        next_execution=ts(job.next_execution),
        created_at=ts(job.created_at),
        updated_at=ts(job.updated_at),
        last_task_id=job.last_task_id,
    )
