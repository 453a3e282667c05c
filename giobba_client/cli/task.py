"""`giobba task ...`: submit, inspect and control tasks."""

import argparse
import json
import sys
import time
from typing import Any

from giobba_client.cli.output import print_task, print_tasks
from giobba_client.cli.when import WhenError, parse_seconds, parse_when
from giobba_client.client import Client
from giobba_client.models import Task, TaskState, WaitResult

STATES = [s.value for s in TaskState]


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    task = sub.add_parser("task", help="submit, inspect and control tasks")
    verbs = task.add_subparsers(dest="verb", required=True, metavar="COMMAND")

    add = verbs.add_parser("add", help="submit a task; prints its id")
    add.add_argument("name")
    add.add_argument("--payload", default="{}", help="a JSON object (default {})")
    add.add_argument("--queue", default="")
    add.add_argument("--priority", type=int, default=0, help="0-10, higher runs first")
    add.add_argument("--eta", help="ISO-8601 with offset, or +30s / +5m / +2h")
    add.add_argument("--manual", action="store_true", help="wait for `task auto`")
    add.add_argument("--parent", default="", help="run after this task COMPLETED")
    add.add_argument("--max-retries", type=int, default=0)
    add.add_argument("--expires", help="revoke if not started by then (WHEN)")
    add.add_argument("--timeout", help="execution limit in seconds (or 30s / 5m)")
    add.add_argument("--callback", default="", help="URL to POST on COMPLETED")
    add.add_argument("--callback-err", default="", help="URL to POST on FAILED/KILLED")
    add.add_argument("--id", default="", help="a UUID of your own (reused: refused)")
    add.add_argument("--schedule", default="", help="cron: makes it a job; prints its 1st run")
    add.add_argument("--tz", default="", help="IANA zone of --schedule (default: server's)")
    add.set_defaults(run=_add)

    get = verbs.add_parser("get", help="show one task")
    get.add_argument("id")
    get.add_argument("--json", action="store_true")
    get.set_defaults(run=_get)

    lst = verbs.add_parser("list", help="list tasks, newest first")
    lst.add_argument("--state", action="append", type=str.upper, choices=STATES, default=[])
    lst.add_argument("--queue", default="")
    lst.add_argument("--name", default="")
    lst.add_argument("--parent", default="")
    lst.add_argument("--job", default="")
    lst.add_argument("--limit", type=int, default=50)
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(run=_list)

    for verb, help_text, handler in (
        ("revoke", "revoke a pending task (and its children)", _revoke),
        ("auto", "release a MANUAL task", _auto),
        ("kill", "kill a running task", _kill),
        ("state", "print a task's state", _state),
    ):
        cmd = verbs.add_parser(verb, help=help_text)
        cmd.add_argument("id")
        if verb in ("revoke", "kill"):
            cmd.add_argument("--reason", default="")
        cmd.set_defaults(run=handler)

    wait = verbs.add_parser("wait", help="wait until a task is finished")
    wait.add_argument("id")
    wait.add_argument("--timeout", default="60", help="seconds (default 60)")
    wait.add_argument("--json", action="store_true")
    wait.set_defaults(run=_wait)


def _payload(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WhenError(f"--payload: not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(value, dict):
        raise WhenError(f"--payload: must be a JSON object, got {type(value).__name__}")
    return value


def _add(args: argparse.Namespace, client: Client) -> int:
    options: dict[str, Any] = {
        "queue": args.queue,
        "priority": args.priority,
        "manual": args.manual,
        "parent_id": args.parent,
        "max_retries": args.max_retries,
        "callback": args.callback,
        "callback_err": args.callback_err,
        "task_id": args.id,
        "schedule": args.schedule,
        "timezone": args.tz,
    }
    if args.eta:
        options["eta"] = parse_when(args.eta, "--eta")
    if args.expires:
        options["expires_at"] = parse_when(args.expires, "--expires")
    if args.timeout:
        options["timeout"] = parse_seconds(args.timeout, "--timeout")
    task = client.add_task(args.name, _payload(args.payload), **options)
    if task.job_id:  # --schedule made a job: the id printed is its first run's
        print(f"giobba: job {task.job_id} created; its first run is below", file=sys.stderr)
    print(task.id)
    return 0


def _get(args: argparse.Namespace, client: Client) -> int:
    print_task(client.get_task(args.id), args.json, sys.stdout)
    return 0


def _list(args: argparse.Namespace, client: Client) -> int:
    page = client.list_tasks(
        states=args.state,
        queue=args.queue,
        name=args.name,
        parent_id=args.parent,
        job_id=args.job,
        page_size=args.limit,
    )
    print_tasks(page.tasks, args.json, sys.stdout)
    return 0


def _revoke(args: argparse.Namespace, client: Client) -> int:
    result = client.revoke_task(args.id, args.reason)
    extra = f" (and {len(result.revoked_children)} children)" if result.revoked_children else ""
    print(f"{result.task.id} {result.task.state}{extra}")
    return 0


def _auto(args: argparse.Namespace, client: Client) -> int:
    task = client.auto_task(args.id)
    print(f"{task.id} {task.state} {task.start_mode}")
    return 0


def _kill(args: argparse.Namespace, client: Client) -> int:
    task = client.kill_task(args.id, args.reason)
    print(f"{task.id} {task.state}")
    return 0


def _state(args: argparse.Namespace, client: Client) -> int:
    print(client.task_state(args.id))
    return 0


def _progress(task: Task, waited: float) -> str:
    detail = task.state.value
    if task.pending_reason:
        detail += f" ({task.pending_reason.lower()})"
    if task.attempts:
        detail += f", attempt {task.attempts}/{task.max_retries + 1}"
    if task.worker_id and task.state == TaskState.RUNNING:
        detail += f" on {task.worker_id}"
    return f"waiting for {task.id} [{task.name}]: {detail}, {waited:.0f}s"


def _wait_with_progress(client: Client, task_id: str, timeout: float) -> WaitResult:
    """Wait in one-second slices, redrawing a progress line on stderr (a terminal)."""
    began = time.monotonic()
    shown = 0
    while True:
        left = timeout - (time.monotonic() - began)
        result = client.wait_task(task_id, max(min(1.0, left), 0.1))
        if result.done or left <= 1.0:
            if shown:
                sys.stderr.write("\r" + " " * shown + "\r")
                sys.stderr.flush()
            return result
        line = _progress(result.task, time.monotonic() - began)
        sys.stderr.write("\r" + line.ljust(shown))
        sys.stderr.flush()
        shown = max(shown, len(line))


def _wait(args: argparse.Namespace, client: Client) -> int:
    timeout = parse_seconds(args.timeout, "--timeout")
    if sys.stderr.isatty() and not args.json:
        result = _wait_with_progress(client, args.id, timeout)
    else:
        result = client.wait_task(args.id, timeout)
    print_task(result.task, args.json, sys.stdout)
    if not result.done:
        print(
            f"giobba: task {args.id} still {result.task.state} after {timeout:g}s", file=sys.stderr
        )
        return 2
    return 0 if result.task.state == TaskState.COMPLETED else 1
