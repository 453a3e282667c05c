"""Job <-> plain document, shared by the job store adapters.

Datetimes stay datetime objects here (MongoDB stores them natively; SQLite's adapter turns
them into ISO text). `next_ms` and `created_ms` are derived sort keys so both stores can
index "what is due next" and page in creation order with plain integers.
"""

from collections.abc import Callable
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

from giobba_server.domain.clock import to_ms
from giobba_server.domain.job import Job, MissedPolicy, OverlapPolicy
from giobba_server.domain.spec import TaskSpec
from giobba_server.domain.task import StartMode

_JOB_TIMES = ("created_at", "updated_at", "starts_at", "expires_at", "last_execution")
_JOB_TIMES_ALL = (*_JOB_TIMES, "next_execution")
_SPEC_SPANS = ("timeout", "retry_backoff")

ParseTime = Callable[[Any], datetime]


def _spec_doc(spec: TaskSpec) -> dict[str, Any]:
    doc: dict[str, Any] = {f.name: getattr(spec, f.name) for f in fields(TaskSpec)}
    doc["start_mode"] = spec.start_mode.value
    for name in _SPEC_SPANS:
        span = doc[name]
        doc[name] = span.total_seconds() if span is not None else None
    return doc


def _spec_from(doc: dict[str, Any]) -> TaskSpec:
    values = {f.name: doc[f.name] for f in fields(TaskSpec) if f.name in doc}
    values["start_mode"] = StartMode(doc.get("start_mode", "AUTO"))
    values["eta"] = values["expires_at"] = None  # never set on a template
    for name in _SPEC_SPANS:
        if values.get(name) is not None:
            values[name] = timedelta(seconds=values[name])
    return TaskSpec(**values)


def job_to_doc(job: Job) -> dict[str, Any]:
    doc: dict[str, Any] = {f.name: getattr(job, f.name) for f in fields(Job)}
    doc["task"] = _spec_doc(job.task)
    doc["missed_policy"] = job.missed_policy.value
    doc["overlap_policy"] = job.overlap_policy.value
    doc["run_expiry"] = job.run_expiry.total_seconds() if job.run_expiry is not None else None
    doc["next_ms"] = to_ms(job.next_execution) if job.next_execution is not None else None
    doc["created_ms"] = to_ms(job.created_at)
    return doc


def job_from_doc(doc: dict[str, Any], parse_time: ParseTime) -> Job:
    values = {f.name: doc[f.name] for f in fields(Job) if f.name in doc}
    values["task"] = _spec_from(doc["task"])
    values["missed_policy"] = MissedPolicy(doc.get("missed_policy", "COALESCE"))
    values["overlap_policy"] = OverlapPolicy(doc.get("overlap_policy", "ALLOW"))
    if values.get("run_expiry") is not None:
        values["run_expiry"] = timedelta(seconds=values["run_expiry"])
    for name in _JOB_TIMES_ALL:
        if values.get(name) is not None:
            values[name] = parse_time(values[name])
    return Job(**values)
