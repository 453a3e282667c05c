"""The production broker over TLS, as an ACL user given the seed's way (GIOBBA_BROKER_*).

Redis here listens on TLS only, with the default user switched off: the server can reach it
only through `rediss://`, the CA named in the URL, and the username/password from the
environment (which win over the URL's). The password must never reach the server's output.
"""

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from giobba_client import TaskState
from tests.e2e.harness import Stack, stack
from tests.support.fixtures import running
from tests.support.services import TlsRedisServer

USER, PASSWORD = "giobba-app", "pw-Zq81-never-logged"


@pytest.fixture(scope="module")
def tls_redis() -> Iterator[TlsRedisServer]:
    with running(TlsRedisServer(username=USER, password=PASSWORD), "redis") as server:
        yield server


def _url(server: TlsRedisServer, db: int) -> str:
    return f"rediss://{server.host}:{server.port}/{db}?ssl_ca_certs={server.ca_file}"


def _env(st: Stack, password: str) -> None:
    st.env["GIOBBA_BROKER_ADMIN_USERNAME"] = USER
    st.env["GIOBBA_BROKER_ADMIN_PASSWORD"] = password


def test_tasks_flow_over_tls_with_the_acl_user_from_the_environment(
    tls_redis: TlsRedisServer, tmp_path: Path
) -> None:
    # A wrong password in the URL: the environment's must win.
    url = _url(tls_redis, 3).replace("rediss://", "rediss://nobody:wrong@")
    with stack(tmp_path, broker_url=url) as st:
        _env(st, PASSWORD)
        st.start_server()
        st.start_worker()
        task = st.client().add_task("echo", {"over": "tls ✓"})
        done = st.client().wait_task(task.id, timeout=30)
        assert done.task.state is TaskState.COMPLETED
        assert done.task.result == {"over": "tls ✓"}
        st.stop_server()
        assert PASSWORD not in st.logs()
    direct = redis.Redis.from_url(_url(tls_redis, 3), username=USER, password=PASSWORD)
    try:
        assert direct.dbsize() > 0, "the broker's keys belong in db 3"
        assert direct.dbsize() == len(direct.keys("giobba*"))
    finally:
        direct.flushall()
        direct.close()


def test_a_refused_login_stops_serve_with_one_line_and_no_secret(
    tls_redis: TlsRedisServer, tmp_path: Path
) -> None:
    with stack(tmp_path, broker_url=_url(tls_redis, 0)) as st:
        _env(st, "not-the-password")
        result = subprocess.run(
            st.cli_argv("serve", "--listen", "127.0.0.1:0", "--config", str(st.config)),
            env=st.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "redis broker" in lines[0] and "not-the-password" not in result.stderr
