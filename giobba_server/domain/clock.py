"""UTC time helpers. Everything inside Giobba is aware UTC; epoch milliseconds are used
where adapters need sortable numbers."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def now_ms() -> int:
    return to_ms(utcnow())
