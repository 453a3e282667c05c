"""The CLI's WHEN and duration parsing."""

from datetime import UTC, datetime, timedelta

import pytest

from giobba_client.cli.when import WhenError, parse_seconds, parse_when

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "delta"),
    [("+30s", 30), ("+5m", 300), ("+2h", 7200), ("+1d", 86400), ("+250ms", 0.25)],
)
def test_relative(text: str, delta: float) -> None:
    assert parse_when(text, "--eta", NOW) == NOW + timedelta(seconds=delta)


def test_iso_with_offset_is_honoured() -> None:
    when = parse_when("2026-12-24T18:00:00+01:00", "--eta")
    assert when.astimezone(UTC) == datetime(2026, 12, 24, 17, 0, tzinfo=UTC)
    assert parse_when("2026-12-24T17:00:00Z", "--eta") == datetime(2026, 12, 24, 17, tzinfo=UTC)


@pytest.mark.parametrize("text", ["tomorrow", "2026-12-24T18:00:00", "+5y", "+-3s"])
def test_refused_naming_the_option(text: str) -> None:
    with pytest.raises(WhenError, match=r"^--eta: "):
        parse_when(text, "--eta", NOW)


def test_seconds() -> None:
    assert parse_seconds("90", "--timeout") == 90
    assert parse_seconds("5m", "--timeout") == 300
    with pytest.raises(WhenError, match="--timeout"):
        parse_seconds("soon", "--timeout")
