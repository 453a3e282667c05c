"""Conformance kit fixtures: built worker implementations and a fresh stack per test."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance.kit import IMPLEMENTATIONS, build_workers
from tests.e2e.harness import Stack, stack


@pytest.fixture(scope="session")
def built_workers() -> None:
    build_workers()


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest, built_workers: None) -> str:
    name: str = request.param
    return name


@pytest.fixture
def st(tmp_path: Path) -> Iterator[Stack]:
    with stack(tmp_path) as s:
        s.start_server()
        yield s
