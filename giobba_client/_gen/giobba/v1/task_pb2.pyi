import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATE_UNSPECIFIED: _ClassVar[TaskState]
    TASK_STATE_PENDING: _ClassVar[TaskState]
    TASK_STATE_RUNNING: _ClassVar[TaskState]
    TASK_STATE_COMPLETED: _ClassVar[TaskState]
    TASK_STATE_FAILED: _ClassVar[TaskState]
    TASK_STATE_REVOKED: _ClassVar[TaskState]
    TASK_STATE_KILLED: _ClassVar[TaskState]

class StartMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    START_MODE_UNSPECIFIED: _ClassVar[StartMode]
    START_MODE_AUTO: _ClassVar[StartMode]
    START_MODE_MANUAL: _ClassVar[StartMode]

class PendingReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PENDING_REASON_UNSPECIFIED: _ClassVar[PendingReason]
    PENDING_REASON_READY: _ClassVar[PendingReason]
    PENDING_REASON_ETA: _ClassVar[PendingReason]
    PENDING_REASON_MANUAL: _ClassVar[PendingReason]
    PENDING_REASON_PARENT: _ClassVar[PendingReason]
    PENDING_REASON_RETRY: _ClassVar[PendingReason]

class CallbackStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CALLBACK_STATUS_UNSPECIFIED: _ClassVar[CallbackStatus]
    CALLBACK_STATUS_PENDING: _ClassVar[CallbackStatus]
    CALLBACK_STATUS_DELIVERED: _ClassVar[CallbackStatus]
    CALLBACK_STATUS_FAILED: _ClassVar[CallbackStatus]

class ActivityKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTIVITY_KIND_UNSPECIFIED: _ClassVar[ActivityKind]
    ACTIVITY_KIND_CREATED: _ClassVar[ActivityKind]
    ACTIVITY_KIND_STARTED: _ClassVar[ActivityKind]
    ACTIVITY_KIND_RETRIED: _ClassVar[ActivityKind]
    ACTIVITY_KIND_COMPLETED: _ClassVar[ActivityKind]
    ACTIVITY_KIND_FAILED: _ClassVar[ActivityKind]
    ACTIVITY_KIND_REVOKED: _ClassVar[ActivityKind]
    ACTIVITY_KIND_KILLED: _ClassVar[ActivityKind]
    ACTIVITY_KIND_RELEASED: _ClassVar[ActivityKind]
    ACTIVITY_KIND_RECOVERED: _ClassVar[ActivityKind]

class WorkerKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKER_KIND_UNSPECIFIED: _ClassVar[WorkerKind]
    WORKER_KIND_WORKER: _ClassVar[WorkerKind]
    WORKER_KIND_SERVER: _ClassVar[WorkerKind]
TASK_STATE_UNSPECIFIED: TaskState
TASK_STATE_PENDING: TaskState
TASK_STATE_RUNNING: TaskState
TASK_STATE_COMPLETED: TaskState
TASK_STATE_FAILED: TaskState
TASK_STATE_REVOKED: TaskState
TASK_STATE_KILLED: TaskState
START_MODE_UNSPECIFIED: StartMode
START_MODE_AUTO: StartMode
START_MODE_MANUAL: StartMode
PENDING_REASON_UNSPECIFIED: PendingReason
PENDING_REASON_READY: PendingReason
PENDING_REASON_ETA: PendingReason
PENDING_REASON_MANUAL: PendingReason
PENDING_REASON_PARENT: PendingReason
PENDING_REASON_RETRY: PendingReason
CALLBACK_STATUS_UNSPECIFIED: CallbackStatus
CALLBACK_STATUS_PENDING: CallbackStatus
CALLBACK_STATUS_DELIVERED: CallbackStatus
CALLBACK_STATUS_FAILED: CallbackStatus
ACTIVITY_KIND_UNSPECIFIED: ActivityKind
ACTIVITY_KIND_CREATED: ActivityKind
ACTIVITY_KIND_STARTED: ActivityKind
ACTIVITY_KIND_RETRIED: ActivityKind
ACTIVITY_KIND_COMPLETED: ActivityKind
ACTIVITY_KIND_FAILED: ActivityKind
ACTIVITY_KIND_REVOKED: ActivityKind
ACTIVITY_KIND_KILLED: ActivityKind
ACTIVITY_KIND_RELEASED: ActivityKind
ACTIVITY_KIND_RECOVERED: ActivityKind
WORKER_KIND_UNSPECIFIED: WorkerKind
WORKER_KIND_WORKER: WorkerKind
WORKER_KIND_SERVER: WorkerKind

class TaskSpec(_message.Message):
    __slots__ = ("id", "name", "payload", "queue", "priority", "eta", "start_mode", "parent_id", "max_retries", "expires_at", "callback", "callback_err", "schedule", "timeout", "retry_backoff", "timezone")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ETA_FIELD_NUMBER: _ClassVar[int]
    START_MODE_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_ERR_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    RETRY_BACKOFF_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    payload: str
    queue: str
    priority: int
    eta: _timestamp_pb2.Timestamp
    start_mode: StartMode
    parent_id: str
    max_retries: int
    expires_at: _timestamp_pb2.Timestamp
    callback: str
    callback_err: str
    schedule: str
    timeout: _duration_pb2.Duration
    retry_backoff: _duration_pb2.Duration
    timezone: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., payload: _Optional[str] = ..., queue: _Optional[str] = ..., priority: _Optional[int] = ..., eta: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_mode: _Optional[_Union[StartMode, str]] = ..., parent_id: _Optional[str] = ..., max_retries: _Optional[int] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., callback: _Optional[str] = ..., callback_err: _Optional[str] = ..., schedule: _Optional[str] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., retry_backoff: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., timezone: _Optional[str] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("id", "name", "payload", "queue", "state", "eta", "priority", "start_mode", "parent_id", "schedule", "is_schedule_active", "job_id", "error", "created_at", "updated_at", "started_at", "completed_at", "expires_at", "result", "retries", "max_retries", "scheduler_id", "worker_id", "callback", "callback_err", "timeout", "retry_backoff", "attempts", "pending_reason", "callback_status", "callback_attempts", "callback_error")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ETA_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    START_MODE_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    IS_SCHEDULE_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_ERR_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    RETRY_BACKOFF_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    PENDING_REASON_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_STATUS_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    payload: str
    queue: str
    state: TaskState
    eta: _timestamp_pb2.Timestamp
    priority: int
    start_mode: StartMode
    parent_id: str
    schedule: str
    is_schedule_active: bool
    job_id: str
    error: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    result: str
    retries: int
    max_retries: int
    scheduler_id: str
    worker_id: str
    callback: str
    callback_err: str
    timeout: _duration_pb2.Duration
    retry_backoff: _duration_pb2.Duration
    attempts: int
    pending_reason: PendingReason
    callback_status: CallbackStatus
    callback_attempts: int
    callback_error: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., payload: _Optional[str] = ..., queue: _Optional[str] = ..., state: _Optional[_Union[TaskState, str]] = ..., eta: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., priority: _Optional[int] = ..., start_mode: _Optional[_Union[StartMode, str]] = ..., parent_id: _Optional[str] = ..., schedule: _Optional[str] = ..., is_schedule_active: _Optional[bool] = ..., job_id: _Optional[str] = ..., error: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., result: _Optional[str] = ..., retries: _Optional[int] = ..., max_retries: _Optional[int] = ..., scheduler_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., callback: _Optional[str] = ..., callback_err: _Optional[str] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., retry_backoff: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., attempts: _Optional[int] = ..., pending_reason: _Optional[_Union[PendingReason, str]] = ..., callback_status: _Optional[_Union[CallbackStatus, str]] = ..., callback_attempts: _Optional[int] = ..., callback_error: _Optional[str] = ...) -> None: ...

class Activity(_message.Message):
    __slots__ = ("cursor", "time", "task_id", "name", "queue", "old_state", "new_state", "worker_id", "attempt", "error", "kind", "job_id")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    OLD_STATE_FIELD_NUMBER: _ClassVar[int]
    NEW_STATE_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    cursor: int
    time: _timestamp_pb2.Timestamp
    task_id: str
    name: str
    queue: str
    old_state: TaskState
    new_state: TaskState
    worker_id: str
    attempt: int
    error: str
    kind: ActivityKind
    job_id: str
    def __init__(self, cursor: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., task_id: _Optional[str] = ..., name: _Optional[str] = ..., queue: _Optional[str] = ..., old_state: _Optional[_Union[TaskState, str]] = ..., new_state: _Optional[_Union[TaskState, str]] = ..., worker_id: _Optional[str] = ..., attempt: _Optional[int] = ..., error: _Optional[str] = ..., kind: _Optional[_Union[ActivityKind, str]] = ..., job_id: _Optional[str] = ...) -> None: ...

class WorkerInfo(_message.Message):
    __slots__ = ("id", "host", "pid", "queues", "concurrency", "running_task_ids", "completed", "failed", "version", "kind", "last_seen", "started_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    RUNNING_TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    host: str
    pid: int
    queues: _containers.RepeatedScalarFieldContainer[str]
    concurrency: int
    running_task_ids: _containers.RepeatedScalarFieldContainer[str]
    completed: int
    failed: int
    version: str
    kind: WorkerKind
    last_seen: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., host: _Optional[str] = ..., pid: _Optional[int] = ..., queues: _Optional[_Iterable[str]] = ..., concurrency: _Optional[int] = ..., running_task_ids: _Optional[_Iterable[str]] = ..., completed: _Optional[int] = ..., failed: _Optional[int] = ..., version: _Optional[str] = ..., kind: _Optional[_Union[WorkerKind, str]] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
