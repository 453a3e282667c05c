"""UTC time helpers. Everything inside Giobba is aware UTC; epoch milliseconds are used
where adapters need sortable numbers."""

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def to_ms_not_before(moment: datetime) -> int:
    """Epoch milliseconds rounded up, for a time that must not come early: an ETA
    truncated to its millisecond let a task start up to 1 ms before it (exact integer
    microseconds, no float rounding)."""
    return -(-((moment - EPOCH) // _MICROSECOND) // 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def now_ms() -> int:
    return to_ms(utcnow())
