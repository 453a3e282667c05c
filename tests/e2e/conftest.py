"""E2E fixtures: a fresh stack per test, on each backend."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Stack, stack

BACKENDS = ["embedded"]


@pytest.fixture(params=BACKENDS)
def st(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    with stack(tmp_path) as s:
        s.start_server()
        yield s
