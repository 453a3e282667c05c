"""`giobba watch`, `giobba top` and `giobba task wait` against a live server: output
captured, or read from a pseudo-terminal where the command behaves differently on a TTY."""

import json
import os
import pty
import select
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from tests.e2e.harness import REPO, Stack, wait_until


class Pty:
    """A CLI process on a pseudo-terminal; its output is collected in a thread."""

    def __init__(self, st: Stack, *args: str) -> None:
        master, slave = pty.openpty()
        self.popen = subprocess.Popen(
            st.cli_argv(*args),
            env=st.env,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=REPO,
            close_fds=True,
        )
        os.close(slave)
        self._master = master
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            ready, _, _ = select.select([self._master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(self._master, 65536)
                except OSError:
                    return
                if not data:
                    return
                self._chunks.append(data)
            elif self.popen.poll() is not None:
                return

    def text(self) -> str:
        return b"".join(self._chunks).decode(errors="replace")

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
        self.popen.wait(20)
        self._reader.join(5)
        os.close(self._master)


@contextmanager
def on_pty(st: Stack, *args: str) -> Iterator[Pty]:
    proc = Pty(st, *args)
    try:
        yield proc
    finally:
        proc.close()


@contextmanager
def piped(st: Stack, *args: str) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """A CLI process with stdout on a pipe, its lines collected in a thread."""
    proc = subprocess.Popen(
        st.cli_argv(*args),
        env=st.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        lines.extend(proc.stdout)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(20)
        reader.join(5)


def test_watch_replays_then_follows_and_resumes_after_a_restart(st: Stack) -> None:
    client = st.client()
    first = client.add_task("echo", {}, queue="alpha")
    client.add_task("echo", {}, queue="beta")
    with piped(st, "watch", "--from", "0", "--queue", "alpha") as (proc, lines):
        wait_until(lambda: any(first.id in line for line in lines), 30, what="replayed event")
        live = client.add_task("echo", {}, queue="alpha")
        wait_until(lambda: any(live.id in line for line in lines), 30, what="live event")
        st.stop_server()
        st.start_server()
        after = wait_until(_submit(st, "alpha"), 30, what="submit after restart")
        wait_until(lambda: any(after in line for line in lines), 30, what="event after restart")
        assert proc.poll() is None, "".join(lines)
    text = "".join(lines)
    assert "queue=beta" not in text
    assert "CREATED" in text and "->PENDING" in text
    cursors = [int(line.split()[0]) for line in lines if line.split() and line.split()[0].isdigit()]
    assert cursors == sorted(set(cursors)), text


def _submit(st: Stack, queue: str) -> Callable[[], str]:
    def attempt() -> str:
        done = st.cli("task", "add", "echo", "--queue", queue, timeout=30)
        return done.stdout.strip() if done.returncode == 0 else ""

    return attempt


def test_watch_count_and_json(st: Stack) -> None:
    ids = [t.id for t in st.client().add_tasks([{"name": "echo"} for _ in range(3)])]
    done = st.cli("watch", "--from", "0", "--count", "3", "--json", timeout=30)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["task_id"] for e in events] == ids
    assert {e["kind"] for e in events} == {"CREATED"}


def test_watch_without_a_server_fails_at_once_in_one_line(st: Stack) -> None:
    st.stop_server()
    done = st.cli("watch", "--count", "1", timeout=30)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("giobba:"), done.stderr


def test_ctrl_c_ends_watch_quietly(st: Stack) -> None:
    task = st.client().add_task("echo", {})
    with piped(st, "watch", "--from", "0") as (proc, lines):
        wait_until(lambda: any(task.id in line for line in lines), 30, what="the event")
        proc.send_signal(signal.SIGINT)  # mid-read of the live stream
        code = proc.wait(20)
    assert code == 130, "".join(lines)
    assert "Traceback" not in "".join(lines), "".join(lines)


def test_top_once_shows_queues_workers_and_failures(st: Stack) -> None:
    client = st.client()
    failed = client.add_task("fail", {"message": "kaput"}, queue="default")
    st.start_worker(queues="default")
    assert client.wait_task(failed.id, 30).done
    client.add_task("echo", {}, queue="later", priority=7, eta=timedelta(hours=1))
    client.add_task("echo", {}, queue="idle", priority=3)
    client.add_task("echo", {}, queue="idle", priority=9)
    done = st.cli("top", "--once", timeout=30)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "throughput:" in out
    idle = next(line for line in out.splitlines() if line.startswith("idle"))
    assert "2 (p9:1 p3:1)" in idle
    later = next(line for line in out.splitlines() if line.startswith("later"))
    assert "1 (p7:1)" in later
    assert "workers: 1" in out
    assert failed.id in out and "kaput" in out


def test_top_refreshes_in_place_on_a_terminal(st: Stack) -> None:
    st.client().add_task("echo", {}, queue="screen")
    with on_pty(st, "top", "--interval", "0.3") as proc:
        wait_until(lambda: proc.text().count("\x1b[H\x1b[2J") >= 3, 30, what="3 redraws")
        assert "screen" in proc.text()


def test_task_wait_draws_a_progress_line_on_a_terminal(st: Stack) -> None:
    task = st.client().add_task("sleep", {"seconds": 2.5})
    st.start_worker()
    with on_pty(st, "task", "wait", task.id, "--timeout", "30") as proc:
        wait_until(lambda: proc.popen.poll() is not None, 40, what="wait to end")
        text = proc.text()
    assert proc.popen.returncode == 0, text
    assert f"waiting for {task.id} [sleep]: RUNNING" in text
    assert "\r" in text  # redrawn in place
    assert "COMPLETED" in text
    # Not a terminal: no progress line, just the task.
    plain = st.cli("task", "wait", task.id)
    assert "waiting for" not in plain.stdout + plain.stderr
