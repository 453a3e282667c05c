"""A result the server cannot store is a failed attempt, not a task stuck until its lease
lapses: the real `giobba worker` falls back to FailTask when CompleteTask is refused.

One backend is enough: the refusal happens before any adapter is touched.
"""

from pathlib import Path

from giobba_client import TaskState
from tests.e2e.harness import stack

MiB = 2**20


def test_a_result_too_big_to_store_fails_the_attempt_and_retries(tmp_path: Path) -> None:
    with stack(tmp_path) as st:
        st.start_server()
        st.start_worker()
        # 9 MiB in, 9 MiB echoed back: each fits alone, both do not fit one 16 MiB document.
        payload = {"x": "y" * (9 * MiB)}
        task_id = st.client().add_task("echo", payload, max_retries=1).id
        outcome = st.client().wait_task(task_id, timeout=60)
        assert outcome.done, f"task still {outcome.task.state}"
        task = outcome.task
        assert task.state == TaskState.FAILED
        assert task.attempts == 2 and task.retries == 1  # retried per its policy
        assert task.error.startswith("result refused by the server: result: ")
        assert "16777216 byte (16 MiB) document limit" in task.error
        assert "result refused" in st.workers[0].text()
        st.close()
