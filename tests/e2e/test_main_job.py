"""Issue 2's "what must hold", through real `giobba serve` and `giobba worker` processes."""

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from giobba_client import FailedPrecondition, InvalidArgument, TaskState, aio
from giobba_client._gen.giobba.v1 import task_pb2 as pb
from giobba_client._gen.giobba.v1 import task_service_pb2 as ts
from giobba_client._gen.giobba.v1 import task_service_pb2_grpc as ts_grpc
from giobba_client._gen.giobba.v1 import worker_service_pb2 as ws
from giobba_client._gen.giobba.v1 import worker_service_pb2_grpc as ws_grpc
from tests.e2e.harness import RECORDING, Stack, executions, stack, wait_until
from tests.support.services import free_port


def _done(st: Stack, task_id: str, timeout: float = 30) -> TaskState:
    result = st.client().wait_task(task_id, timeout)
    assert result.done, f"task {task_id} still {result.task.state}"
    return result.task.state


def test_same_eta_runs_highest_priority_first_and_not_before_eta(st: Stack) -> None:
    client = st.client()
    eta = datetime.now(UTC) + timedelta(seconds=2)
    ids = {p: client.add_task("record", {}, priority=p, eta=eta).id for p in (2, 9, 5)}
    st.start_worker(RECORDING, concurrency=1)
    for task_id in ids.values():
        assert _done(st, task_id) == TaskState.COMPLETED
    order = [t for t in executions(st)]
    assert order == [ids[9], ids[5], ids[2]]
    for task_id in ids.values():
        started = client.get_task(task_id).started_at
        assert started is not None and started >= eta


def test_high_priority_submitted_later_starts_second(st: Stack) -> None:
    client = st.client()
    st.start_worker(RECORDING, concurrency=1)
    low = [client.add_task("record", {"seconds": 1}, priority=1).id for _ in range(5)]
    wait_until(lambda: executions(st), what="the first task to start")
    high = client.add_task("record", {}, priority=9).id
    for task_id in [*low, high]:
        assert _done(st, task_id) == TaskState.COMPLETED
    order = executions(st)
    assert order[0] == low[0]
    assert order[1] == high
    assert order[2:] == low[1:]


def test_manual_task_waits_for_auto(st: Stack) -> None:
    client = st.client()
    st.start_worker(concurrency=2)
    manual = client.add_task("echo", {"m": 1}, manual=True).id
    probe = client.add_task("echo", {}).id  # proves the worker is serving meanwhile
    assert _done(st, probe) == TaskState.COMPLETED
    assert client.get_task(manual).state == TaskState.PENDING
    assert client.get_task(manual).pending_reason == "MANUAL"
    released = st.cli("task", "auto", manual)
    assert released.returncode == 0, released.stderr
    assert _done(st, manual) == TaskState.COMPLETED


def test_child_waits_for_parent_and_is_revoked_when_parent_fails(st: Stack) -> None:
    client = st.client()
    st.start_worker(RECORDING, concurrency=2)
    parent = client.add_task("record", {"seconds": 1}).id
    child = client.add_task("record", {}, parent_id=parent).id
    assert _done(st, child) == TaskState.COMPLETED
    assert executions(st) == [parent, child]
    assert client.get_task(child).started_at >= client.get_task(parent).completed_at  # type: ignore[operator]

    bad = client.add_task("record_fail", {"message": "parent broke"}).id
    orphan = client.add_task("record", {}, parent_id=bad).id
    grandchild = client.add_task("record", {}, parent_id=orphan).id
    assert _done(st, bad) == TaskState.FAILED
    for task_id in (orphan, grandchild):
        assert _done(st, task_id) == TaskState.REVOKED
        task = client.get_task(task_id)
        assert task.started_at is None
        assert "parent" in task.error
    assert orphan not in executions(st)


def test_fail_runs_max_retries_plus_one_times(st: Stack) -> None:
    client = st.client()
    st.start_worker(RECORDING, concurrency=2)
    three = client.add_task("record_fail", {"message": "kaputt ✗ ünï"}, max_retries=2).id
    once = client.add_task("record_fail", {"message": "once"}, max_retries=0).id
    assert _done(st, three) == TaskState.FAILED
    assert _done(st, once) == TaskState.FAILED
    task = client.get_task(three)
    assert task.retries == 2
    assert task.error == "kaputt ✗ ünï"
    runs = executions(st)
    assert runs.count(three) == 3
    assert runs.count(once) == 1
    assert client.get_task(once).retries == 0


def test_expired_task_is_revoked_and_never_runs(st: Stack) -> None:
    client = st.client()
    st.start_worker(RECORDING, queues="default")
    task = client.add_task(
        "record", {}, queue="nobody", expires_at=datetime.now(UTC) + timedelta(seconds=1)
    )
    assert _done(st, task.id, timeout=15) == TaskState.REVOKED
    got = client.get_task(task.id)
    assert got.error == "expired"
    assert got.started_at is None
    assert task.id not in executions(st)


def test_revoke_pending_never_runs_and_completed_is_refused(st: Stack) -> None:
    client = st.client()
    pending = client.add_task("record", {}, eta=datetime.now(UTC) + timedelta(seconds=1)).id
    revoked = st.cli("task", "revoke", pending)
    assert revoked.returncode == 0, revoked.stderr
    assert client.get_task(pending).state == TaskState.REVOKED
    st.start_worker(RECORDING)
    done = client.add_task("record", {}).id
    assert _done(st, done) == TaskState.COMPLETED
    assert pending not in executions(st)
    with pytest.raises(FailedPrecondition, match="COMPLETED"):
        client.revoke_task(done)
    refused = st.cli("task", "revoke", done)
    assert refused.returncode != 0
    assert "COMPLETED" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_wait_with_a_zero_timeout_looks_once(st: Stack) -> None:
    client = st.client()
    held = client.add_task("echo", {}, manual=True)
    began = time.monotonic()
    result = client.wait_task(held.id, 0)
    assert not result.done and result.task.state == TaskState.PENDING
    assert time.monotonic() - began < 5, "a zero timeout must not wait (the RPC allows 10 s)"


def test_an_unknown_start_mode_is_refused(st: Stack) -> None:
    with grpc.insecure_channel(st.address) as channel:
        stub = ts_grpc.TaskServiceStub(channel)
        spec = pb.TaskSpec(name="echo", start_mode=99)  # type: ignore[arg-type]
        with pytest.raises(grpc.RpcError) as caught:
            stub.AddTask(ts.AddTaskRequest(task=spec), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "task.start_mode: 99 is not a start mode" in (caught.value.details() or "")
    assert st.client().list_tasks().tasks == []


def test_ids_are_checked_and_taken_in_any_uuid_spelling(st: Stack) -> None:
    client = st.client()
    task = client.add_task("echo", {}, manual=True)
    for call in (client.get_task, client.task_state, client.auto_task, client.revoke_task):
        with pytest.raises(InvalidArgument, match=r"^id: must be a UUID, got 'not-a-uuid'"):
            call("not-a-uuid")
    assert client.get_task(task.id.upper()).id == task.id
    assert client.get_task("{" + task.id + "}").id == task.id
    assert client.revoke_task(task.id.upper()).task.state == TaskState.REVOKED


def test_an_overlong_revoke_reason_is_refused_and_changes_nothing(st: Stack) -> None:
    client = st.client()
    task = client.add_task("echo", {}, eta=datetime.now(UTC) + timedelta(hours=1)).id
    with pytest.raises(InvalidArgument, match="reason"):
        client.revoke_task(task, reason="x" * 1025)
    assert client.get_task(task).state == TaskState.PENDING
    assert client.revoke_task(task, reason="y" * 1024).task.error == "y" * 1024


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"priority": 11}, "task.priority"),
        ({"priority": -1}, "task.priority"),
        ({"callback": "not a url"}, "task.callback"),
        ({"callback_err": "ftp://example.com/x"}, "task.callback_err"),
        ({"parent_id": "3f1b0c7e-5d8a-4f5e-9a51-0d5cf3f1e2aa"}, "task.parent_id"),
        ({"timezone": "Europe/Rome"}, "task.timezone"),  # a zone without a schedule
        (  # could never run
            {"eta": timedelta(hours=2), "expires_at": timedelta(hours=1)},
            "task.expires_at",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    st: Stack, options: dict[str, object], field: str
) -> None:
    client = st.client()
    with pytest.raises(InvalidArgument) as caught:
        client.add_task("echo", {}, **options)
    assert field in str(caught.value)
    assert client.list_tasks().tasks == []  # nothing half-written
    assert client.add_task("echo", {}).state == TaskState.PENDING  # still serving


@pytest.mark.parametrize(
    ("name", "payload", "field"),
    [
        ("", "{}", "task.name"),
        ("echo", "[1, 2]", "task.payload"),
        ("echo", "not json", "task.payload"),
        ("echo", '{"x": NaN}', "task.payload"),
        ("echo", '{"x": ' + "[" * 5000 + "]" * 5000 + "}", "task.payload"),
        ("echo\nINFO forged log line", "{}", "task.name"),
    ],
)
def test_raw_requests_with_bad_fields_are_refused(
    st: Stack, name: str, payload: str, field: str
) -> None:
    with grpc.insecure_channel(st.address) as channel:
        stub = ts_grpc.TaskServiceStub(channel)
        request = ts.AddTaskRequest(task=pb.TaskSpec(name=name, payload=payload))
        with pytest.raises(grpc.RpcError) as caught:
            stub.AddTask(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (caught.value.details() or "")
    assert st.client().list_tasks().tasks == []


def test_a_wait_longer_than_one_server_call_goes_on(
    st: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server waits at most MAX_WAIT per WaitTask; the SDK makes as many calls as the
    caller's timeout needs (a 400 s wait was silently cut to 300 s)."""
    monkeypatch.setattr(aio, "MAX_WAIT", 0.3)
    held = st.client().add_task("echo", {}, manual=True)
    began = time.monotonic()
    result = st.client().wait_task(held.id, 1.2)
    assert not result.done
    assert time.monotonic() - began >= 1.2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"priority": True}, "priority: must be an integer"),
        ({"priority": 10**20}, "priority: 100000000000000000000 is out of range"),
        ({"max_retries": 2**31}, "max_retries:"),
    ],
)
def test_the_sdk_names_fields_protobuf_would_not(
    st: Stack, options: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        st.client().add_task("echo", {}, **options)
    with pytest.raises(InvalidArgument, match="page_size"):
        st.client().list_tasks(page_size=10**12)


@pytest.mark.parametrize("token", ["9" * 40 + ":x", "²:x", "abc"])
def test_a_forged_page_token_is_an_invalid_argument(st: Stack, token: str) -> None:
    with grpc.insecure_channel(st.address) as channel:
        stub = ts_grpc.TaskServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.ListTasks(ts.ListTasksRequest(page_token=token), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in (caught.value.details() or "")


def test_tasks_too_large_for_one_message_are_listed_over_several_pages(st: Stack) -> None:
    client = st.client()
    big = "x" * (14 * 1024 * 1024)
    ids = {client.add_task("echo", {"blob": big}, manual=True).id for _ in range(5)}
    seen: set[str] = set()
    token = ""
    for _ in range(10):
        page = client.list_tasks(page_token=token)
        seen |= {t.id for t in page.tasks}
        token = page.next_page_token
        if not token:
            break
    assert seen == ids


@pytest.mark.parametrize(
    ("worker_id", "reason"),
    [("w\nINFO forged", "control characters"), ("w" * 3000, "longer than"), ("", "empty")],
)
def test_a_bad_worker_id_is_refused_naming_the_field(
    st: Stack, worker_id: str, reason: str
) -> None:
    with grpc.insecure_channel(st.address) as channel:
        stub = ws_grpc.WorkerServiceStub(channel)
        calls = [
            ("worker_id", stub.LeaseTasks, ws.LeaseTasksRequest(worker_id=worker_id, max_tasks=1)),
            ("worker.id", stub.Heartbeat, ws.HeartbeatRequest(worker=pb.WorkerInfo(id=worker_id))),
        ]
        for field, call, request in calls:
            with pytest.raises(grpc.RpcError) as caught:
                call(request, timeout=10)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert (caught.value.details() or "").startswith(f"{field}: "), caught.value.details()
            assert reason in (caught.value.details() or "")


def test_cli_errors_are_one_line_and_nonzero(st: Stack) -> None:
    for args in (
        ("task", "add", "echo", "--priority", "11"),
        ("task", "add", "echo", "--payload", "[1]"),
        ("task", "add", "echo", "--eta", "tomorrow"),
        ("task", "get", "8a6d5f3e-0000-4000-8000-000000000000"),
    ):
        result = st.cli(*args)
        assert result.returncode != 0, args
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("giobba: ")
    limited = st.cli("task", "add", "echo", "--timeout", "5s")  # the task's limit, not the RPC's
    assert limited.returncode == 0, limited.stderr
    added = st.cli("task", "add", "echo", "--payload", '{"k": "v"}', "--priority", "7")
    assert added.returncode == 0
    task_id = added.stdout.strip()
    assert len(task_id) == 36  # only the id
    shown = st.cli("task", "get", task_id, "--json")
    assert '"priority": 7' in shown.stdout
    assert '"state": "PENDING"' in shown.stdout


def test_restart_with_100_pending_tasks_runs_each_exactly_once(st: Stack) -> None:
    client = st.client()
    ids = [
        t.id
        for t in client.add_tasks([{"name": "record", "payload": {"i": i}} for i in range(100)])
    ]
    st.stop_server()
    st.start_server()
    st.start_worker(RECORDING, concurrency=4)
    for task_id in ids:
        assert _done(st, task_id) == TaskState.COMPLETED
    runs = executions(st)
    assert sorted(runs) == sorted(ids)
    assert all(client.get_task(i).attempts == 1 for i in ids[:10])


def test_a_server_stopped_as_soon_as_it_listens_exits_cleanly(st: Stack) -> None:
    """SIGTERM right after "listening" (background loops still on their first call to the
    backends, where drivers can swallow a cancellation) ends in a clean, prompt exit."""
    st.stop_server()
    for _ in range(8):
        st.start_server()
        began = time.monotonic()
        code = st.server.stop(timeout=15) if st.server is not None else None
        st.server = None
        assert code == 0, f"server exited {code}"
        assert time.monotonic() - began < 10


def test_a_second_server_on_a_busy_port_refuses_to_start(st: Stack) -> None:
    second = st.cli("serve", "--listen", st.address, "--config", str(st.config), timeout=60)
    assert second.returncode != 0
    assert "cannot listen on" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1, second.stderr
    assert st.client().add_task("echo", {}).state == TaskState.PENDING  # the first serves on


def test_a_second_embedded_server_on_the_same_database_refuses(tmp_path: Path) -> None:
    with stack(tmp_path) as first:
        first.start_server()
        other = free_port()
        second = first.cli("serve", "--listen", f"127.0.0.1:{other}", timeout=60)
        assert second.returncode != 0
        assert "in use by another giobba server" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1, second.stderr
        first.stop_server()
        first.start_server()  # the lock goes with the process: a restart is fine
