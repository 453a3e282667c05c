"""Giobba's Python SDK: clients, the worker runtime and typed models."""

from giobba_client.aio import AsyncClient
from giobba_client.client import Client
from giobba_client.context import Cancelled, HandlerResult, NoRetry, TaskContext
from giobba_client.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    GiobbaError,
    InvalidArgument,
    LeaseLost,
    NotFound,
    Unavailable,
    Unimplemented,
)
from giobba_client.handlers import Handlers
from giobba_client.models import (
    Activity,
    Job,
    JobPage,
    Task,
    TaskPage,
    TaskState,
    WaitResult,
    WorkerInfo,
)
from giobba_client.worker import Worker

__all__ = [
    "Activity",
    "AlreadyExists",
    "AsyncClient",
    "Cancelled",
    "Client",
    "DeadlineExceeded",
    "FailedPrecondition",
    "GiobbaError",
    "HandlerResult",
    "Handlers",
    "InvalidArgument",
    "Job",
    "JobPage",
    "LeaseLost",
    "NoRetry",
    "NotFound",
    "Task",
    "TaskContext",
    "TaskPage",
    "TaskState",
    "Unavailable",
    "Unimplemented",
    "WaitResult",
    "Worker",
    "WorkerInfo",
]
