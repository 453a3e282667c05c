"""Times that must not come early round up to the millisecond."""

from datetime import UTC, datetime, timedelta

import pytest

from giobba_server.domain.clock import from_ms, to_ms, to_ms_not_before


@pytest.mark.parametrize("micros", [0, 1, 499, 500, 999, 1000, 1001])
def test_an_eta_is_never_rounded_earlier(micros: int) -> None:
    eta = datetime(2026, 12, 4, 7, 47, 9, tzinfo=UTC) + timedelta(microseconds=micros)
    due = to_ms_not_before(eta)
    assert from_ms(due) >= eta
    assert due - to_ms(eta) <= 1


def test_before_the_epoch_too() -> None:
    eta = datetime(1969, 12, 31, 23, 59, 59, 999_500, tzinfo=UTC)
    assert from_ms(to_ms_not_before(eta)) >= eta
