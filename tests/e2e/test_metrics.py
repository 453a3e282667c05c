"""The Prometheus endpoint and structured logs of a real server."""

import json
from pathlib import Path

import httpx

from giobba_client import TaskState
from tests.e2e.harness import FAST_CONFIG, stack, wait_until
from tests.support.receiver import Receiver
from tests.support.services import free_port

SECRET = "never-log-this-secret"
PAYLOAD_MARK = "never-log-this-payload"


def _scrape(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def test_metrics_endpoint_and_json_logs(tmp_path: Path) -> None:
    port = free_port()
    config = FAST_CONFIG + (
        f"metrics:\n  listen: 127.0.0.1:{port}\n"
        f"log:\n  level: DEBUG\n  format: json\n"
        f"callbacks:\n  secret: {SECRET}\n"
    )
    with Receiver() as receiver, stack(tmp_path, config=config) as st:
        st.start_server()
        client = st.client()
        url = receiver.script("/hook", 200)
        done = [client.add_task("echo", {"mark": PAYLOAD_MARK}, callback=url).id for _ in range(3)]
        failed = client.add_task("fail", {"message": "nope"}).id
        client.add_task("echo", {}, queue="parked", manual=True)
        st.start_worker()
        for task_id in done:
            assert client.wait_task(task_id, 30).task.state == TaskState.COMPLETED
        assert client.wait_task(failed, 30).task.state == TaskState.FAILED
        wait_until(lambda: len(receiver.at("/hook")) == 3, 30, what="3 callbacks")

        def settled() -> dict[str, float]:
            m = _scrape(port)
            ok = m.get('giobba_callback_attempts_total{outcome="DELIVERED"}') == 3
            return m if ok and m.get('giobba_tasks{queue="parked",state="PENDING"}') else {}

        m = wait_until(settled, 30, what="metrics to settle")
        assert m['giobba_tasks_submitted_total{queue="default"}'] == 4
        assert m['giobba_tasks_completed_total{queue="default"}'] == 3
        assert m['giobba_tasks_failed_total{queue="default"}'] == 1
        assert m['giobba_queue_depth{queue="parked"}'] == 1
        assert m['giobba_tasks{queue="default",state="PENDING"}'] == 0
        assert m['giobba_eta_lateness_seconds_count{queue="default"}'] == 4
        assert m['giobba_task_run_seconds_count{queue="default",state="COMPLETED"}'] == 3
        assert m['giobba_rpc_seconds_count{code="OK",method="AddTask"}'] == 5
        assert any(k.startswith("giobba_rpc_seconds_count{") and "CompleteTask" in k for k in m)
        assert st.server is not None
        log = st.server.text()
        st.stop_server()
    lines = [line for line in log.splitlines() if line.startswith("{")]
    assert lines, log
    for line in lines:
        entry = json.loads(line)
        assert {"time", "level", "logger", "message"} <= set(entry)
    assert any(json.loads(line)["logger"] == "giobba.callbacks" for line in lines)
    assert SECRET not in log
    assert PAYLOAD_MARK not in log
