"""Page tokens and page sizes: a forged token is an INVALID_ARGUMENT, never INTERNAL, and
a page of large tasks is cut to fit one gRPC message."""

from datetime import UTC, datetime

import pytest

from giobba_server.domain.ports import Page, page_token, parse_page_token
from giobba_server.domain.task import Task
from giobba_server.services.queries import MAX_PAGE_BYTES, fit
from tests.contract.repo_fixtures import make_task

NOW = datetime(2026, 12, 4, tzinfo=UTC)


def _task(seq: int, payload_bytes: int = 2) -> Task:
    body = '{"x":"' + "a" * max(payload_bytes - 8, 0) + '"}' if payload_bytes > 2 else "{}"
    return make_task(f"00000000-0000-0000-0000-{seq:012d}", seq, payload=body)


@pytest.mark.parametrize("token", ["9" * 40 + ":x", "²:x", "12", ":x", "12:", "-1:x", "1 :x"])
def test_forged_tokens_are_not_tokens(token: str) -> None:
    assert parse_page_token(token) is None


def test_a_token_round_trips() -> None:
    task = _task(1234)
    assert parse_page_token(page_token(task)) == (1234, task.id)


def test_small_pages_are_left_alone() -> None:
    page = Page([_task(i) for i in range(100)], "next")
    assert fit(page) is page


def test_large_tasks_are_cut_into_pages_that_fit_a_message() -> None:
    tasks = [_task(i, 14 * 1024 * 1024) for i in range(6, 0, -1)]
    page = fit(Page(tasks, ""))
    assert 1 <= len(page.tasks) < 6
    assert sum(len(t.payload.encode()) for t in page.tasks) <= MAX_PAGE_BYTES
    assert page.next_token == page_token(page.tasks[-1])


def test_one_task_larger_than_the_budget_still_comes_alone() -> None:
    page = fit(Page([_task(2, 40 * 1024 * 1024), _task(1)], ""))
    assert [t.seq for t in page.tasks] == [2]
    assert page.next_token == page_token(page.tasks[0])
