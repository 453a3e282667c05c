"""`giobba job ...`: create, inspect and control cron jobs.

`job get` prints the next fire times both in the job's own zone (what the schedule means)
and in UTC (what servers and logs show), so a DST surprise is visible before it happens.
"""

import argparse
import json
import sys
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from giobba_client.cli.output import dumps, print_table
from giobba_client.cli.task import _payload
from giobba_client.cli.when import parse_seconds, parse_when
from giobba_client.client import Client
from giobba_client.models import Job

LIST_COLUMNS = ("id", "name", "schedule", "timezone", "active", "next_execution", "last_task_id")
UPCOMING = 5


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    job = sub.add_parser("job", help="create, inspect and control cron jobs")
    verbs = job.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    _add_parser(verbs)

    lst = verbs.add_parser("list", help="list jobs, oldest first")
    lst.add_argument("--limit", type=int, default=100)
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(run=_list)

    get = verbs.add_parser("get", help="show a job and its next five fire times")
    get.add_argument("id")
    get.add_argument("--json", action="store_true")
    get.set_defaults(run=_get)

    for verb, help_text, handler in (
        ("pause", "stop firing until resumed", _pause),
        ("resume", "fire again from now on (missed times are not run)", _resume),
        ("delete", "delete a job (its runs stay)", _delete),
        ("trigger", "run once now, outside the schedule; prints the task id", _trigger),
    ):
        cmd = verbs.add_parser(verb, help=help_text)
        cmd.add_argument("id")
        cmd.set_defaults(run=handler)


def _add_parser(verbs: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    add = verbs.add_parser("add", help="create a job; prints its id")
    add.add_argument("name", help="handler name of every run")
    add.add_argument("--schedule", required=True, help="cron: 5 or 6 fields, or @daily etc.")
    add.add_argument("--tz", default="", help="IANA zone of the schedule (default: server's)")
    add.add_argument("--payload", default="{}", help="a JSON object (default {})")
    add.add_argument("--queue", default="")
    add.add_argument("--priority", type=int, default=0, help="0-10, higher runs first")
    add.add_argument("--max-retries", type=int, default=0)
    add.add_argument("--timeout", help="execution limit per run in seconds (or 30s / 5m)")
    add.add_argument("--callback", default="", help="URL to POST on COMPLETED")
    add.add_argument("--callback-err", default="", help="URL to POST on FAILED/KILLED")
    add.add_argument("--starts", help="no fire before then (WHEN)")
    add.add_argument("--expires", help="the job's end: no fire after then (WHEN)")
    add.add_argument("--run-expiry", help="revoke a run not started this long after its time")
    add.add_argument("--missed", choices=("coalesce", "skip", "run-all"), default="coalesce")
    add.add_argument("--overlap", choices=("allow", "skip"), default="allow")
    add.add_argument("--id", default="", help="a UUID of your own")
    add.set_defaults(run=_add)


def _add(args: argparse.Namespace, client: Client) -> int:
    options: dict[str, Any] = {
        "timezone": args.tz,
        "job_id": args.id,
        "missed_policy": args.missed,
        "overlap_policy": args.overlap,
        "queue": args.queue,
        "priority": args.priority,
        "max_retries": args.max_retries,
        "callback": args.callback,
        "callback_err": args.callback_err,
    }
    if args.starts:
        options["starts_at"] = parse_when(args.starts, "--starts")
    if args.expires:
        options["expires_at"] = parse_when(args.expires, "--expires")
    if args.timeout:
        options["timeout"] = parse_seconds(args.timeout, "--timeout")
    if args.run_expiry:
        options["run_expiry"] = parse_seconds(args.run_expiry, "--run-expiry")
    job = client.create_job(args.schedule, args.name, _payload(args.payload), **options)
    print(job.id)
    return 0


def _list(args: argparse.Namespace, client: Client) -> int:
    page = client.list_jobs(page_size=args.limit)
    if args.json:
        print(dumps([j.to_json() for j in page.jobs]))
        return 0
    rows = [
        [
            j.id,
            str(j.task.get("name", "")),
            j.schedule,
            j.timezone,
            "yes" if j.is_active else "no",
            _utc(j.next_execution),
            j.last_task_id,
        ]
        for j in page.jobs
    ]
    print_table(LIST_COLUMNS, rows, sys.stdout)
    return 0


def _get(args: argparse.Namespace, client: Client) -> int:
    job = client.get_job(args.id, upcoming=UPCOMING)
    if args.json:
        print(dumps(job.to_json()))
        return 0
    print_job(job)
    return 0


def print_job(job: Job) -> None:
    data = job.to_json()
    data.pop("upcoming")
    width = max(len(k) for k in data)
    for key, value in data.items():
        if value in ("", None, {}) and key != "task":
            continue
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else value
        print(f"{key.ljust(width)}  {shown}")
    print(f"next {UPCOMING} fire times ({job.timezone} / UTC):")
    if not job.upcoming:
        print("  none (the job is paused or has ended)")
    zone = ZoneInfo(job.timezone) if job.timezone != "UTC" else None
    for moment in job.upcoming:
        local = moment.astimezone(zone) if zone else moment
        print(f"  {local.isoformat()}  {_utc(moment)}")


def _utc(moment: datetime | None) -> str:
    return moment.isoformat().replace("+00:00", "Z") if moment else ""


def _pause(args: argparse.Namespace, client: Client) -> int:
    job = client.pause_job(args.id)
    print(f"{job.id} paused")
    return 0


def _resume(args: argparse.Namespace, client: Client) -> int:
    job = client.resume_job(args.id)
    print(f"{job.id} active, next {_utc(job.next_execution)}")
    return 0


def _delete(args: argparse.Namespace, client: Client) -> int:
    client.delete_job(args.id)
    print(f"{args.id} deleted")
    return 0


def _trigger(args: argparse.Namespace, client: Client) -> int:
    print(client.trigger_job(args.id).id)
    return 0
