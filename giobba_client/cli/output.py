"""How the CLI prints tasks: aligned text for people, JSON for scripts."""

import json
from collections.abc import Sequence
from typing import Any, TextIO

from giobba_client.models import Task

LIST_COLUMNS = ("id", "name", "queue", "priority", "state", "retries", "created_at", "error")


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=False)


def print_task(task: Task, as_json: bool, out: TextIO) -> None:
    data = task.to_json()
    if as_json:
        print(dumps(data), file=out)
        return
    width = max(len(k) for k in data)
    for key, value in data.items():
        if value in ("", None, [], {}) and key not in ("payload", "error"):
            continue
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else value
        print(f"{key.ljust(width)}  {shown}", file=out)


def print_tasks(tasks: Sequence[Task], as_json: bool, out: TextIO) -> None:
    if as_json:
        print(dumps([t.to_json() for t in tasks]), file=out)
        return
    rows = [[_cell(t.to_json().get(c)) for c in LIST_COLUMNS] for t in tasks]
    print_table(LIST_COLUMNS, rows, out)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    line = "  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line.rstrip(), file=out)
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."
