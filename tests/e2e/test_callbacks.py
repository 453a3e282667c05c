"""HTTP callbacks through real processes, to a real receiver on 127.0.0.1."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from giobba_client import Task, TaskState
from giobba_server.domain.callback import verify
from tests.e2e.harness import FAST_CONFIG, Stack, stack, wait_until
from tests.support.receiver import HANG, Receiver
from tests.support.services import free_port

SECRET = "s3cr3t-for-tests"
CALLBACK_CONFIG = (
    FAST_CONFIG
    + f"""\
callbacks:
  secret: {SECRET}
  maxAttempts: 3
  retryBase: 100ms
  retryCap: 500ms
  connectTimeout: 1s
  readTimeout: 1s
"""
)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def cst(backend_urls: tuple[str, str], tmp_path: Path) -> Iterator[Stack]:
    database_url, broker_url = backend_urls
    with stack(tmp_path, database_url, broker_url, CALLBACK_CONFIG) as s:
        s.start_server()
        yield s


def _settled(st: Stack, task_id: str, timeout: float = 60) -> Task:
    """The task once its callback is DELIVERED or FAILED."""

    def settled() -> list[Task]:
        task = st.client().get_task(task_id)
        return [task] if task.callback_status in ("DELIVERED", "FAILED") else []

    return wait_until(settled, timeout, 0.05, what=f"callback of {task_id} settled")[0]


def test_flaky_target_gets_three_posts_with_one_delivery_id_and_a_valid_signature(
    cst: Stack, receiver: Receiver
) -> None:
    url = receiver.script("/flaky", 500, 500, 200)
    cst.start_worker()
    task = cst.client().add_task("echo", {"n": 1, "big": 2**70}, callback=url)
    done = _settled(cst, task.id)
    assert done.state == TaskState.COMPLETED  # the callback never changes the state
    assert (done.callback_status, done.callback_attempts, done.callback_error) == (
        "DELIVERED",
        3,
        "",
    )
    posts = receiver.at("/flaky")
    assert len(posts) == 3
    assert len({p.delivery_id for p in posts}) == 1 and posts[0].delivery_id
    assert [p.headers["giobba-attempt"] for p in posts] == ["1", "2", "3"]
    assert len({p.body for p in posts}) == 1  # the same bytes every time
    for post in posts:
        assert verify(SECRET, post.body, post.headers["giobba-signature"])
        assert not verify("another secret", post.body, post.headers["giobba-signature"])
    body = posts[0].json()
    assert body["id"] == task.id and body["state"] == "COMPLETED"
    assert body["result"] == {"n": 1, "big": 2**70}
    assert body["delivery_id"] == posts[0].delivery_id
    assert {"name", "queue", "retries", "max_retries", "created_at", "completed_at"} <= set(body)
    shown = cst.cli("task", "get", task.id)
    assert "callback_status" in shown.stdout and "DELIVERED" in shown.stdout, shown.stdout


def test_404_is_not_retried(cst: Stack, receiver: Receiver) -> None:
    url = receiver.script("/gone", 404)
    cst.start_worker()
    task = cst.client().add_task("echo", {}, callback=url)
    done = _settled(cst, task.id)
    assert (done.callback_status, done.callback_attempts) == ("FAILED", 1)
    assert done.callback_error == "HTTP 404"
    assert len(receiver.at("/gone")) == 1


def test_silent_target_is_given_up_while_ten_others_are_delivered_promptly(
    cst: Stack, receiver: Receiver
) -> None:
    silent = receiver.script("/silent", HANG)
    fine = receiver.script("/fine", 200)
    cst.start_worker(concurrency=4)
    client = cst.client()
    stuck = client.add_task("echo", {}, callback=silent)
    wait_until(lambda: receiver.at("/silent"), 30, what="the first POST to /silent")
    others = [client.add_task("echo", {"i": i}, callback=fine) for i in range(10)]
    for other in others:
        assert client.wait_task(other.id, 30).task.state == TaskState.COMPLETED
    wait_until(lambda: len(receiver.at("/fine")) == 10, 10, what="ten callbacks to /fine")
    # All ten arrived while the silent target was still being retried.
    assert client.get_task(stuck.id).callback_status == "PENDING"
    lag = [
        p.at - client.get_task(p.json()["id"]).completed_at.timestamp()  # type: ignore[union-attr]
        for p in receiver.at("/fine")
    ]
    assert max(lag) < 2.0, lag
    done = _settled(cst, stuck.id)
    assert (done.callback_status, done.callback_attempts) == ("FAILED", 3)
    assert "timeout" in done.callback_error.lower()
    assert len(receiver.at("/silent")) == 3
    assert {p.delivery_id for p in receiver.at("/fine")} == {
        p.json()["delivery_id"] for p in receiver.at("/fine")
    }


def test_worker_lost_triggers_callback_err_once(cst: Stack, receiver: Receiver) -> None:
    errors = receiver.script("/errors", 200)
    oks = receiver.script("/oks", 200)
    worker = cst.start_worker()
    task = cst.client().add_task(
        "sleep", {"seconds": 60}, callback=oks, callback_err=errors, max_retries=0
    )
    wait_until(
        lambda: cst.client().get_task(task.id).state == TaskState.RUNNING, 30, what="running"
    )
    worker.kill()  # SIGKILL: no result, no last heartbeat; the lease lapses
    done = _settled(cst, task.id)
    assert done.state == TaskState.FAILED and done.error == "worker lost"
    assert done.callback_status == "DELIVERED"
    [post] = receiver.at("/errors")
    body = post.json()
    assert (body["state"], body["error"], body["max_retries"]) == ("FAILED", "worker lost", 0)
    assert receiver.at("/oks") == []


def test_sigkill_mid_delivery_redelivers_with_the_same_id_after_restart(
    cst: Stack, receiver: Receiver
) -> None:
    url = receiver.script("/once", HANG, 200)
    cst.start_worker()
    task = cst.client().add_task("echo", {"x": 1}, callback=url)
    wait_until(lambda: receiver.at("/once"), 30, what="the first POST")
    assert cst.server is not None
    cst.server.kill()  # SIGKILL: the task completed, its callback is unanswered
    cst.server = None
    cst.start_server()
    done = _settled(cst, task.id, timeout=60)
    assert done.state == TaskState.COMPLETED
    assert done.callback_status == "DELIVERED"
    posts = receiver.at("/once")
    assert len(posts) == 2
    assert posts[0].delivery_id == posts[1].delivery_id
    assert posts[0].body == posts[1].body


def test_sigkill_right_after_completion_delivers_after_restart(
    backend_urls: tuple[str, str], tmp_path: Path
) -> None:
    """The receiver is down when the task completes, and the server is SIGKILLed right
    after: the outbox entry is all that is left; the restarted server delivers it."""
    port = free_port()
    config = CALLBACK_CONFIG.replace("maxAttempts: 3", "maxAttempts: 100")
    with stack(tmp_path, backend_urls[0], backend_urls[1], config) as st:
        st.start_server()
        st.start_worker()
        task = st.client().add_task("echo", {"k": "v"}, callback=f"http://127.0.0.1:{port}/late")
        assert st.client().wait_task(task.id, 30).task.state == TaskState.COMPLETED
        assert st.server is not None
        st.server.kill()
        st.server = None
        with Receiver(port) as receiver:
            st.start_server()
            done = _settled(st, task.id, timeout=60)
            assert (done.state, done.callback_status) == (TaskState.COMPLETED, "DELIVERED")
            [post] = receiver.at("/late")
            assert post.json()["id"] == task.id
            assert post.json()["result"] == {"k": "v"}
