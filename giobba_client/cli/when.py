"""Parse the CLI's WHEN values: ISO-8601 with an offset, or `+30s` / `+5m` / `+2h` / `+1d`."""

import math
import re
from datetime import UTC, datetime, timedelta

_RELATIVE = re.compile(r"^\+(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


class WhenError(ValueError):
    pass


def parse_when(text: str, option: str, now: datetime | None = None) -> datetime:
    text = text.strip()
    match = _RELATIVE.match(text)
    if match:
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
        try:
            return (now or datetime.now(UTC)) + timedelta(seconds=seconds)
        except OverflowError:
            raise WhenError(f"{option}: {text!r} is too far away") from None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise WhenError(
            f"{option}: {text!r} is neither ISO-8601 with an offset nor +N[s|m|h|d]"
        ) from None
    if value.tzinfo is None:
        raise WhenError(f"{option}: {text!r} has no UTC offset (add Z or +HH:MM)")
    return value


def parse_seconds(text: str, option: str) -> float:
    match = _RELATIVE.match("+" + text.strip().lstrip("+"))
    if match:
        return float(match.group(1)) * _UNITS[match.group(2)]
    try:
        seconds = float(text)
    except ValueError:
        raise WhenError(f"{option}: {text!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise WhenError(f"{option}: {text!r} is not a number of seconds (0 or more)")
    return seconds
