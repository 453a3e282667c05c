"""The `giobba` command: server, worker, and task/job control."""

import argparse
import logging
import math
import os
import sys
from collections.abc import Sequence
from typing import Any, cast

from giobba_client.cli import job as job_cmd
from giobba_client.cli import live as live_cmd
from giobba_client.cli import task as task_cmd
from giobba_client.cli import workers as workers_cmd
from giobba_client.cli.when import WhenError
from giobba_client.client import Client
from giobba_client.errors import GiobbaError


class _Parser(argparse.ArgumentParser):
    """Every command takes the global options before or after its name (`giobba --server X
    worker` and `giobba worker --server X` alike). Below the top level they default to
    SUPPRESS, so a value given at the top is not overwritten by a subcommand's default."""

    def __init__(self, *args: Any, top: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument(
            "--server",
            default=(os.environ.get("GIOBBA_SERVER") or "127.0.0.1:50051")
            if top
            else argparse.SUPPRESS,
            help="server address HOST:PORT (env GIOBBA_SERVER, default 127.0.0.1:50051)",
        )
        self.add_argument(
            "--deadline",
            type=float,
            default=30.0 if top else argparse.SUPPRESS,
            dest="rpc_deadline",  # not `timeout`: `task add --timeout` is the task's own limit
            help="RPC deadline in seconds (default 30)",
        )


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="giobba", description="Giobba task executor", top=True)
    # The command modules take the base type; what they add are _Parser instances all the same.
    sub = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", required=True, metavar="COMMAND"),
    )

    serve = sub.add_parser("serve", help="run the gRPC server")
    serve.add_argument("--listen", help="HOST:PORT (default from config, 127.0.0.1:50051)")
    serve.add_argument("--config", help="a giobba.yml to use instead of the lookup")
    serve.set_defaults(run=None, serve=True)

    worker = sub.add_parser("worker", help="run a worker with the handlers of an app")
    worker.add_argument("--app", required=True, help="module name or .py file with Handlers")
    worker.add_argument("--queues", default="default", help="comma-separated (default: default)")
    worker.add_argument("--concurrency", type=int, default=1)
    worker.add_argument("--drain", type=float, default=30.0, help="seconds to finish on SIGTERM")
    worker.add_argument("--id", default=None, help="worker id (default host-pid-random)")
    worker.set_defaults(run=None, worker=True)

    task_cmd.add_parser(sub)
    workers_cmd.add_parser(sub)
    job_cmd.add_parser(sub)
    live_cmd.add_parser(sub)
    return parser


def _serve(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from giobba_server.app import serve  # noqa: PLC0415 - only `serve` needs the server
    from giobba_server.config import load_config  # noqa: PLC0415
    from giobba_server.domain.errors import GiobbaError as ServerError  # noqa: PLC0415
    from giobba_server.logs import configure as configure_logs  # noqa: PLC0415

    try:
        config = load_config(Path(args.config) if args.config else None)
        if args.listen:
            config = config.with_listen(args.listen)
        configure_logs(config.log_level, config.log_format)
        asyncio.run(serve(config))
    except ServerError as exc:
        print(f"giobba serve: {exc}", file=sys.stderr)
        return 1
    return 0


def _worker(args: argparse.Namespace) -> int:
    from giobba_client.handlers import load_app  # noqa: PLC0415
    from giobba_client.worker import Worker  # noqa: PLC0415

    logging.basicConfig(
        level=os.environ.get("GIOBBA_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if args.concurrency < 1:
        raise WhenError("--concurrency: must be at least 1")
    queues = [q.strip() for q in args.queues.split(",") if q.strip()]
    worker = Worker(
        args.server,
        queues,
        args.concurrency,
        handlers=load_app(args.app),
        worker_id=args.id,
        drain_timeout=args.drain,
    )
    logging.getLogger("giobba.worker").info("handlers: %s", ", ".join(worker.handlers.names()))
    worker.run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if getattr(args, "serve", False):
            return _serve(args)
        if getattr(args, "worker", False):
            return _worker(args)
        if not math.isfinite(args.rpc_deadline) or args.rpc_deadline <= 0:
            raise WhenError(
                f"--deadline: {args.rpc_deadline:g} is not a positive number of seconds"
            )
        with Client(args.server, timeout=args.rpc_deadline) as client:
            code: int = args.run(args, client)
            return code
    except (GiobbaError, WhenError, ValueError) as exc:
        print(f"giobba: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `giobba task list | head`: the reader left, nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
