"""The composition root: pick adapters from config, wire services, serve gRPC."""

import asyncio
import logging
import os
import signal
import socket
import uuid
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from giobba_client._gen.giobba.v1 import job_service_pb2, task_service_pb2, worker_service_pb2
from giobba_client._gen.giobba.v1 import job_service_pb2_grpc as js_grpc
from giobba_client._gen.giobba.v1 import task_service_pb2_grpc as ts_grpc
from giobba_client._gen.giobba.v1 import worker_service_pb2_grpc as ws_grpc
from giobba_server.adapters import Backends, open_backends
from giobba_server.api.job_servicer import JobServicer
from giobba_server.api.task_servicer import TaskServicer
from giobba_server.api.worker_servicer import WorkerServicer
from giobba_server.broker.memory_lock import MemoryFireLock
from giobba_server.config import Config, ConfigError
from giobba_server.domain.clock import utcnow
from giobba_server.domain.ports import WorkerStatus
from giobba_server.domain.zones import RULES_VERSION
from giobba_server.metrics import MeteredFeed, Metrics, RpcTimer, follow_forever
from giobba_server.scheduler.callbacks import CallbackLoop, DeliverySettings
from giobba_server.scheduler.cron import CronLoop
from giobba_server.scheduler.reaper import Reaper
from giobba_server.services.cancels import CancelHub
from giobba_server.services.context import Deps, Settings
from giobba_server.services.recovery import reconcile
from giobba_server.waits import wait_event

log = logging.getLogger("giobba.server")

VERSION = "0.1.0"
MAX_MESSAGE = 64 * 1024 * 1024
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
    # Workers ping every 10 s to notice a dead server; allow it, even between calls.
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 5000),
    ("grpc.http2.max_ping_strikes", 0),
    ("grpc.keepalive_time_ms", 20000),
    ("grpc.keepalive_timeout_ms", 10000),
    # gRPC sets SO_REUSEPORT by default: a second server on a busy port would start and
    # split the traffic with the first. Fail instead.
    ("grpc.so_reuseport", 0),
]


@dataclass
class App:
    config: Config
    deps: Deps
    reaper: Reaper
    server: grpc.aio.Server
    port: int
    backends: Backends
    cron: CronLoop | None = None
    callbacks: CallbackLoop | None = None
    metrics: Metrics | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def _settings(config: Config, server_id: str) -> Settings:
    return Settings(
        server_id=server_id,
        lease=config.lock_duration,
        execution_cutoff=config.execution_cutoff,
        polling_timeout=config.polling_timeout,
        retry_base=config.retry_base,
        retry_cap=config.retry_cap,
        worker_ttl=config.lock_duration,
        default_timezone=config.timezone,
    )


def _callbacks(config: Config, backends: Backends, metrics: Metrics | None) -> CallbackLoop | None:
    if backends.outbox is None:
        return None
    c = config.callbacks
    settings = DeliverySettings(
        secret=c.secret,
        max_attempts=c.max_attempts,
        connect_timeout=c.connect_timeout,
        read_timeout=c.read_timeout,
        retry_base=c.retry_base,
        retry_cap=c.retry_cap,
        concurrency=c.concurrency,
    )
    lock = backends.locks or MemoryFireLock()
    observe = metrics.callback if metrics is not None else None
    return CallbackLoop(backends.outbox, backends.repo, lock, settings, observe=observe)


async def build(config: Config) -> App:
    try:  # before anything is opened or logged: a busy port is the whole answer
        _check_bindable(config.listen)
    except OSError as exc:
        raise ConfigError(
            "server.listen", f"cannot listen on {config.listen}: {exc.strerror or exc}"
        ) from None
    server_id = f"server-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    backends = await open_backends(config)
    metrics = Metrics() if config.metrics_listen else None
    feed = backends.feed if metrics is None else MeteredFeed(backends.feed, metrics)
    deps = Deps(
        backends.broker,
        backends.repo,
        feed,
        backends.registry,
        _settings(config, server_id),
    )
    if metrics is not None:
        deps.observe = metrics.observe
    reaper = Reaper(deps, cap=min(config.jobs_timeout_refresh.total_seconds(), 5.0))
    deps.timers_changed = reaper.poke
    if backends.signals is not None:
        deps.cancels = CancelHub(backends.signals)
    deps.jobs, deps.fire_lock = backends.jobs, backends.locks
    cron = CronLoop(deps, cap=config.jobs_timeout_refresh.total_seconds())
    deps.jobs_changed = cron.poke
    callbacks = _callbacks(config, backends, metrics)
    deps.callbacks = callbacks
    await reconcile(deps)
    interceptors = [RpcTimer(metrics)] if metrics is not None else []
    server = grpc.aio.server(options=SERVER_OPTIONS, interceptors=interceptors)
    ts_grpc.add_TaskServiceServicer_to_server(TaskServicer(deps), server)
    ws_grpc.add_WorkerServiceServicer_to_server(WorkerServicer(deps), server)
    js_grpc.add_JobServiceServicer_to_server(JobServicer(deps), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [
        task_service_pb2.DESCRIPTOR.services_by_name["TaskService"].full_name,
        worker_service_pb2.DESCRIPTOR.services_by_name["WorkerService"].full_name,
        job_service_pb2.DESCRIPTOR.services_by_name["JobService"].full_name,
    ]
    reflection.enable_server_reflection(
        [*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    try:
        port = server.add_insecure_port(config.listen)
    except RuntimeError:
        port = 0
    if port == 0:
        raise ConfigError(
            "server.listen",
            f"cannot listen on {config.listen}: in use, or not an address of this host",
        )
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return App(config, deps, reaper, server, port, backends, cron, callbacks, metrics)


def _check_bindable(listen: str) -> None:
    """Bind the address once ourselves, so a busy port is refused with our message rather
    than after gRPC's own error log (SO_REUSEADDR: a restart's TIME_WAIT is no obstacle)."""
    host, _, port = listen.rpartition(":")
    if port == "0":
        return
    host = host.strip("[]")
    family, kind, proto, _, address = socket.getaddrinfo(
        host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)


async def _beat(app: App, started: asyncio.Event) -> None:
    """The server's own heartbeat, so operators see every instance."""
    status_started = utcnow()
    interval = app.deps.settings.heartbeat_interval.total_seconds()
    ttl = int(app.deps.settings.worker_ttl.total_seconds() * 1000)
    stop = asyncio.Event()
    started.set()
    while True:
        status = WorkerStatus(
            id=app.deps.settings.server_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=app.config.queues,
            concurrency=0,
            running=(),
            completed=0,
            failed=0,
            version=VERSION,
            kind="SERVER",
            last_seen=utcnow(),
            started_at=status_started,
        )
        await app.deps.registry.beat(status, ttl)
        await wait_event(stop, interval)


async def start(app: App) -> None:
    await app.server.start()
    app.tasks.append(asyncio.create_task(app.reaper.run(), name="reaper"))
    app.tasks.append(asyncio.create_task(app.deps.mender.run(), name="mender"))
    if app.deps.cancels is not None:
        app.tasks.append(asyncio.create_task(app.deps.cancels.run(), name="cancel-push"))
    if app.cron is not None:
        app.tasks.append(asyncio.create_task(app.cron.run(), name="cron"))
    if app.callbacks is not None:
        app.tasks.append(asyncio.create_task(app.callbacks.run(), name="callbacks"))
    if app.metrics is not None:
        feed, repo = app.backends.feed, app.backends.repo
        follow = follow_forever(app.metrics, feed, repo)
        app.tasks.append(asyncio.create_task(follow, name="metrics-feed"))
        app.metrics.serve(app.config.metrics_listen)
    beating = asyncio.Event()
    app.tasks.append(asyncio.create_task(_beat(app, beating), name="server-heartbeat"))
    for task in app.tasks:
        task.add_done_callback(_report_death)
    await beating.wait()


def _report_death(task: "asyncio.Task[None]") -> None:
    """The background loops run until stop(): one that ends early is a bug, and a silent
    one (no lease recovery, no cron) is the worst kind. Say so loudly."""
    if task.cancelled():
        return
    exc = task.exception()
    log.error("background task %s ended: %r", task.get_name(), exc, exc_info=exc)


async def stop(app: App, grace: float = 5.0) -> None:
    app.deps.stopping.set()
    await app.server.stop(grace)
    for task in app.tasks:
        task.cancel()
    # Bounded: a loop that swallowed its cancellation must not hold the process for ever.
    if app.tasks:
        _, stuck = await asyncio.wait(app.tasks, timeout=grace)
        for task in stuck:
            log.error("background task %s did not stop within %.0fs", task.get_name(), grace)
    if app.metrics is not None:
        app.metrics.close()
    await app.backends.close()


async def serve(config: Config, ready: asyncio.Event | None = None) -> None:
    """Run until SIGINT/SIGTERM, then drain in-flight calls and stop."""
    app = await build(config)
    await start(app)
    log.info(
        "giobba %s serving on port %d (broker: %s; database: %s; tz rules %s)",
        VERSION,
        app.port,
        config.broker.where(),
        config.database.where(),
        RULES_VERSION,
    )
    # Signals first: whoever saw "listening" may stop us at once, and must get a clean stop.
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    print(f"giobba server listening on {config.listen.rsplit(':', 1)[0]}:{app.port}", flush=True)
    if ready is not None:
        ready.set()
    await stopping.wait()
    log.info("shutting down")
    await stop(app)
