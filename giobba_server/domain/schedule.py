"""Cron schedules with ISC/Vixie semantics, evaluated in a job's own IANA time zone.

Syntax: 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first;
`*`, ranges, steps (`*/5`, `1-23/2`, `10/15`), lists, JAN-DEC / SUN-SAT names (any case),
day-of-week 0 and 7 = Sunday, and @yearly @annually @monthly @weekly @daily @midnight
@hourly. Extensions: `L` in day-of-month (last day), `5L` (last Friday) and `1#2` (second
Monday) in day-of-week. Rejected with a reason: `W`, `?`, `L-n`, bare `L` in day-of-week,
@reboot, anything else unknown, and schedules that can never fire (`0 0 30 2 *`).

Vixie rules: when day-of-month and day-of-week are both restricted (neither field starts
with `*`) a day matching either fires; otherwise both must match.

DST, decided by the hour field: `*` or a step there makes a "wildcard-hour" schedule.
- Skipped wall times: wildcard-hour schedules just lose them; fixed-hour schedules fire
  once, at the first instant after the jump, for all their times in the gap that day.
- Repeated wall times: fixed-hour schedules fire at the first occurrence only;
  wildcard-hour schedules fire in both copies.

Zones come from the pinned `tzdata` package (see zones.py; "UTC" needs none), never from
the host, and nothing here reads the server's own zone. Fire times are found by calendar
arithmetic (months, then days, then a bisect over the time-of-day sets), never by stepping
minute by minute.
"""

import calendar
from bisect import bisect_left
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from types import MappingProxyType
from typing import Literal

from giobba_server.domain.errors import InvalidArgument
from giobba_server.domain.zones import UnknownZone, load_zone

ErrorField = Literal["schedule", "timezone"]

_DAY_SECONDS = 86_400
_LAST_SECOND = _DAY_SECONDS - 1
# Zone keys that resolve to the host's configuration rather than a named IANA zone.
_HOST_ZONES = frozenset({"localtime", "posixrules"})

_MACROS: Mapping[str, str] = MappingProxyType(
    {
        "@yearly": "0 0 1 1 *",
        "@annually": "0 0 1 1 *",
        "@monthly": "0 0 1 * *",
        "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *",
        "@midnight": "0 0 * * *",
        "@hourly": "0 * * * *",
    }
)
_MONTH_NAMES: Mapping[str, int] = MappingProxyType(
    {name.upper(): i for i, name in enumerate(calendar.month_abbr) if name}
)
_DOW_NAMES: Mapping[str, int] = MappingProxyType(
    {name: i for i, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
)

MAX_EXPRESSION = 1024


class ScheduleError(InvalidArgument, ValueError):
    """A schedule or time zone is invalid; `field` is "schedule" or "timezone"."""

    def __init__(self, field: ErrorField, reason: str) -> None:
        super().__init__(field, reason)

    def __reduce__(self) -> tuple[type["ScheduleError"], tuple[str, str]]:
        # Exceptions pickle as cls(*args); ours takes (field, reason), not the message.
        return (type(self), (self.field, self.reason))


@dataclass(frozen=True)
class _Kind:
    """One cron field's name and bounds. `open_hi` ends `*` and `N/step` (6 for
    day-of-week, so `*/2` does not count Sunday twice as 0 and 7)."""

    name: str
    lo: int
    hi: int
    open_hi: int
    names: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))


_SECOND = _Kind("second", 0, 59, 59)
_MINUTE = _Kind("minute", 0, 59, 59)
_HOUR = _Kind("hour", 0, 23, 23)
_DOM = _Kind("day-of-month", 1, 31, 31)
_MONTH = _Kind("month", 1, 12, 12, _MONTH_NAMES)
_DOW = _Kind("day-of-week", 0, 7, 6, _DOW_NAMES)


@dataclass(frozen=True)
class _Spec:
    """A parsed expression: sorted time-of-day values and the day rule."""

    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: frozenset[int]
    days: frozenset[int]
    last_day: bool
    weekdays: frozenset[int]  # 0 = Sunday
    last_weekdays: frozenset[int]
    nth_weekdays: frozenset[tuple[int, int]]  # (weekday, 1-5)
    either_day: bool  # both day fields restricted: Vixie's OR rule
    wildcard_hour: bool

    def day_matches(self, day: int, month_days: int, weekday: int) -> bool:
        by_dom = day in self.days or (self.last_day and day == month_days)
        by_dow = (
            weekday in self.weekdays
            or (weekday in self.last_weekdays and day + 7 > month_days)
            or (weekday, (day - 1) // 7 + 1) in self.nth_weekdays
        )
        return (by_dom or by_dow) if self.either_day else (by_dom and by_dow)

    def next_time(self, lo: int, hi: int) -> int | None:
        """The first matching second-of-day in [lo, hi], or None."""
        if lo > hi:
            return None
        h0, rest = divmod(lo, 3600)
        m0, s0 = divmod(rest, 60)
        for hour in self.hours[bisect_left(self.hours, h0) :]:
            found = self._next_in_hour(hour, m0, s0) if hour == h0 else self._first_in(hour)
            if found is not None:
                return found if found <= hi else None
        return None

    def _next_in_hour(self, hour: int, m0: int, s0: int) -> int | None:
        for minute in self.minutes[bisect_left(self.minutes, m0) :]:
            if minute > m0:
                return hour * 3600 + minute * 60 + self.seconds[0]
            i = bisect_left(self.seconds, s0)
            if i < len(self.seconds):
                return hour * 3600 + minute * 60 + self.seconds[i]
        return None

    def _first_in(self, hour: int) -> int:
        return hour * 3600 + self.minutes[0] * 60 + self.seconds[0]


def _fail(kind: _Kind, reason: str) -> ScheduleError:
    return ScheduleError("schedule", f"field '{kind.name}' {reason}")


def _value(token: str, kind: _Kind) -> int:
    if token.upper() in kind.names:
        return kind.names[token.upper()]
    if not (token.isascii() and token.isdigit()):
        raise _fail(kind, f"has invalid value '{token}'")
    if len(token) > 4 or not kind.lo <= int(token) <= kind.hi:
        raise _fail(kind, f"value {token} out of range {kind.lo}-{kind.hi}")
    return int(token)


def _step(token: str, kind: _Kind) -> int:
    top = kind.hi - kind.lo + 1
    if not (token.isascii() and token.isdigit()) or len(token) > 4 or not 1 <= int(token) <= top:
        raise _fail(kind, f"step '{token}' out of range 1-{top}")
    return int(token)


def _item_values(item: str, kind: _Kind) -> range:
    """`*`, `N`, `N-M`, each optionally `/step`; `N/step` runs to the field's end."""
    if "?" in item:
        raise _fail(kind, "'?' is not supported; use '*'")
    base, slash, step_text = item.partition("/")
    step = _step(step_text, kind) if slash else 1
    if base == "*":
        lo, hi = kind.lo, kind.open_hi
    elif "-" in base:
        first, _, last = base.partition("-")
        lo, hi = _value(first, kind), _value(last, kind)
        if lo > hi:
            raise _fail(kind, f"range '{base}' runs backwards")
    else:
        lo = _value(base, kind)
        hi = kind.open_hi if slash else lo
    if lo > hi:
        raise _fail(kind, f"'{item}' matches nothing")
    return range(lo, hi + 1, step)


def _items(text: str, kind: _Kind) -> list[str]:
    items = text.split(",")
    if not all(items):
        raise _fail(kind, f"has an empty list item in '{text}'")
    return items


def _plain(text: str, kind: _Kind) -> tuple[int, ...]:
    return tuple(sorted({v for item in _items(text, kind) for v in _item_values(item, kind)}))


def _day_of_month(text: str) -> tuple[frozenset[int], bool]:
    days: set[int] = set()
    last = False
    for item in _items(text, _DOM):
        upper = item.upper()
        if upper == "L":
            last = True
        elif "W" in upper:
            raise _fail(_DOM, f"'{item}': 'W' (nearest weekday) is not supported")
        elif upper.startswith("L"):
            raise _fail(_DOM, f"'{item}': only a bare 'L' (last day) is supported")
        else:
            days.update(_item_values(item, _DOM))
    return frozenset(days), last


def _day_of_week(text: str) -> tuple[frozenset[int], frozenset[int], frozenset[tuple[int, int]]]:
    weekdays: set[int] = set()
    last: set[int] = set()
    nth: set[tuple[int, int]] = set()
    for item in _items(text, _DOW):
        upper = item.upper()
        if "#" in upper:
            day, _, count = upper.partition("#")
            if count not in {"1", "2", "3", "4", "5"}:
                raise _fail(_DOW, f"'{item}': the number after '#' must be 1-5")
            nth.add((_value(day, _DOW) % 7, int(count)))
        elif upper == "L":
            raise _fail(_DOW, "bare 'L' is ambiguous; write e.g. '5L' (last Friday)")
        elif upper.endswith("L"):
            last.add(_value(upper[:-1], _DOW) % 7)
        else:
            weekdays.update(v % 7 for v in _item_values(item, _DOW))
    return frozenset(weekdays), frozenset(last), frozenset(nth)


def _fields(expression: str) -> list[str]:
    words = expression.split()
    if len(words) == 1 and words[0].startswith("@"):
        macro = words[0].lower()
        if macro == "@reboot":
            raise ScheduleError("schedule", "'@reboot' is not supported (it has no fire time)")
        if macro not in _MACROS:
            raise ScheduleError("schedule", f"unknown macro '{words[0]}'")
        words = _MACROS[macro].split()
    if len(words) == 5:
        words.insert(0, "0")
    if len(words) != 6:
        raise ScheduleError(
            "schedule", f"expected 5 or 6 fields or an @macro, got {len(words)} fields"
        )
    return words


def _parse(expression: str) -> _Spec:
    if not isinstance(expression, str):
        raise ScheduleError("schedule", "must be a string")
    if len(expression) > MAX_EXPRESSION:
        # Every field listing every value fits; far longer ones only cost CPU on the
        # server's event loop each time their fire times are computed.
        raise ScheduleError("schedule", f"is longer than {MAX_EXPRESSION} characters")
    sec, minute, hour, dom, month, dow = _fields(expression)
    days, last_day = _day_of_month(dom)
    weekdays, last_weekdays, nth_weekdays = _day_of_week(dow)
    spec = _Spec(
        seconds=_plain(sec, _SECOND),
        minutes=_plain(minute, _MINUTE),
        hours=_plain(hour, _HOUR),
        months=frozenset(_plain(month, _MONTH)),
        days=days,
        last_day=last_day,
        weekdays=weekdays,
        last_weekdays=last_weekdays,
        nth_weekdays=nth_weekdays,
        # Vixie treats a day field starting with '*' (even '*/2') as unrestricted here.
        either_day=not dom.startswith("*") and not dow.startswith("*"),
        wildcard_hour="*" in hour or "/" in hour,
    )
    if not _ever_fires(spec):
        raise ScheduleError(
            "schedule",
            f"never fires: no date has day-of-month '{dom}' in month '{month}'"
            f" with day-of-week '{dow}'",
        )
    return spec


def _ever_fires(spec: _Spec) -> bool:
    """The 400-year Gregorian cycle holds every (month, length, first weekday) combination,
    so trying each one decides whether any date ever matches."""
    for month in spec.months:
        lengths = (28, 29) if month == 2 else (calendar.monthrange(2001, month)[1],)
        for month_days in lengths:
            for first in range(7):
                for day in range(1, month_days + 1):
                    if spec.day_matches(day, month_days, (first + day - 1) % 7):
                        return True
    return False


def _zone(key: str) -> tzinfo:
    if not isinstance(key, str):
        raise ScheduleError("timezone", "must be a string")
    if key == "UTC":
        return UTC  # needs no tzdata at all
    if key in _HOST_ZONES:
        raise ScheduleError("timezone", f"'{key}' names the host's zone, not an IANA zone")
    try:
        return load_zone(key)
    except (UnknownZone, OSError):
        raise ScheduleError("timezone", f"unknown zone '{key}'") from None


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a if b is None else b
    return min(a, b)


def _as_utc(moment: datetime, name: str) -> datetime:
    if moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class _Segment:
    """Seconds-of-day [start, end] of one local day that share both fold offsets.
    off0 == off1: ordinary; off0 > off1: repeated (fall back); off0 < off1: skipped."""

    start: int
    end: int
    off0: timedelta
    off1: timedelta


@dataclass(frozen=True)
class CronSchedule:
    """A validated cron expression in an IANA zone. Construction validates."""

    expression: str
    timezone: str = "UTC"
    _spec: _Spec = field(init=False, repr=False, compare=False)
    _tz: tzinfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_spec", _parse(self.expression))
        object.__setattr__(self, "_tz", _zone(self.timezone))

    @classmethod
    def parse(cls, expression: str, timezone: str = "UTC") -> "CronSchedule":
        return cls(expression, timezone)

    def next_after(self, after: datetime) -> datetime:
        """The first fire time strictly after `after` (aware), as an aware UTC datetime.
        Raises OverflowError if it would fall past year 9999."""
        after = _as_utc(after, "after")
        best: datetime | None = None
        best_day = date.min
        for day in self._days_from(self._start_day(after)):
            if best is not None and day > best_day + timedelta(days=1):
                break
            found, ordinary = self._first_on_day(day, after)
            if found is not None and (best is None or found < best):
                best, best_day = found, day
            # A DST change can reorder instants only across adjacent days, so a candidate
            # from a transition day is compared with the next day's before returning.
            if best is not None and ordinary:
                break
        if best is None:
            raise OverflowError("no fire time before year 9999")
        return best

    def iter_after(self, after: datetime) -> Iterator[datetime]:
        """Fire times strictly after `after`, in order, without end (until year 9999)."""
        current = after
        while True:
            try:
                current = self.next_after(current)
            except OverflowError:
                return
            yield current

    def fire_times_between(
        self, start_exclusive: datetime, end_inclusive: datetime, limit: int
    ) -> list[datetime]:
        """At most `limit` fire times in (start_exclusive, end_inclusive]."""
        if limit < 0:
            raise ValueError("limit must not be negative")
        start = _as_utc(start_exclusive, "start_exclusive")
        end = _as_utc(end_inclusive, "end_inclusive")
        found: list[datetime] = []
        for moment in self.iter_after(start):
            if moment > end or len(found) >= limit:
                break
            found.append(moment)
        return found

    def _start_day(self, after: datetime) -> date:
        # One day early: a repeated interval spanning midnight can put a later instant
        # on the previous local date.
        local = after.astimezone(self._tz).date()
        return local if local == date.min else local - timedelta(days=1)

    def _days_from(self, start: date) -> Iterator[date]:
        """Matching local dates from `start` on, skipping whole months that cannot match."""
        year, month, first_day = start.year, start.month, start.day
        while year <= date.max.year:
            if month in self._spec.months:
                first_weekday, month_days = calendar.monthrange(year, month)
                # monthrange numbers weekdays from Monday=0; cron from Sunday=0.
                for day in range(first_day, month_days + 1):
                    weekday = (first_weekday + day) % 7
                    if self._spec.day_matches(day, month_days, weekday):
                        yield date(year, month, day)
            first_day = 1
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)

    def _first_on_day(self, day: date, after: datetime) -> tuple[datetime | None, bool]:
        """The day's first fire strictly after `after`, and whether the day had no DST
        change (one ordinary segment)."""
        midnight = datetime.combine(day, time())
        segments = self._segments(midnight)
        best: datetime | None = None
        for segment in segments:
            best = _earliest(best, self._first_in_segment(midnight, segment, after))
        only = segments[0]
        return best, len(segments) == 1 and only.off0 == only.off1

    def _first_in_segment(
        self, midnight: datetime, seg: _Segment, after: datetime
    ) -> datetime | None:
        if seg.off0 == seg.off1:
            return self._first_with_offset(midnight, seg, seg.off0, after)
        if seg.off0 > seg.off1:  # repeated wall times: fold=0 is the first copy
            first = self._first_with_offset(midnight, seg, seg.off0, after)
            if not self._spec.wildcard_hour:
                return first
            return _earliest(first, self._first_with_offset(midnight, seg, seg.off1, after))
        # Skipped wall times: a fixed hour fires once, when the clock jumps past them.
        if self._spec.wildcard_hour or self._spec.next_time(seg.start, seg.end) is None:
            return None
        jump = self._jump_instant(midnight + timedelta(seconds=seg.start))
        return jump if jump > after else None

    def _first_with_offset(
        self, midnight: datetime, seg: _Segment, offset: timedelta, after: datetime
    ) -> datetime | None:
        """The first matching wall time in the segment whose instant (wall - offset) is
        after `after`."""
        threshold = after.replace(tzinfo=None) + offset - midnight
        lo = seg.start
        if threshold >= timedelta(0):
            # Wall times are whole seconds: the first one strictly past the threshold.
            lo = max(lo, threshold.days * _DAY_SECONDS + threshold.seconds + 1)
        second = self._spec.next_time(lo, seg.end)
        if second is None:
            return None
        return (midnight + timedelta(seconds=second) - offset).replace(tzinfo=UTC)

    def _segments(self, midnight: datetime) -> list[_Segment]:
        """Split the local day where the (fold=0, fold=1) offsets change; an ordinary day is
        one segment, a DST day three (before, skipped or repeated, after)."""
        starts = [0]
        kinds = [self._offsets(midnight, 0)]
        last = self._offsets(midnight, _LAST_SECOND)
        while kinds[-1] != last:
            starts.append(self._first_change(midnight, starts[-1], kinds[-1]))
            kinds.append(self._offsets(midnight, starts[-1]))
        ends = [s - 1 for s in starts[1:]] + [_LAST_SECOND]
        return [_Segment(s, e, o0, o1) for s, e, (o0, o1) in zip(starts, ends, kinds, strict=True)]

    def _first_change(self, midnight: datetime, lo: int, kind: tuple[timedelta, timedelta]) -> int:
        hi = _LAST_SECOND  # invariant: lo has `kind`, hi does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._offsets(midnight, mid) == kind:
                lo = mid
            else:
                hi = mid
        return hi

    def _offsets(self, midnight: datetime, second: int) -> tuple[timedelta, timedelta]:
        wall = midnight + timedelta(seconds=second)
        return self._offset(wall, 0), self._offset(wall, 1)

    def _offset(self, wall: datetime, fold: int) -> timedelta:
        instant = wall.replace(tzinfo=self._tz, fold=fold).astimezone(UTC)
        return wall - instant.replace(tzinfo=None)

    def _jump_instant(self, skipped: datetime) -> datetime:
        """The transition instant after a skipped wall time: the first second whose UTC
        offset differs from the offset in force just before the gap."""
        lo = int((skipped - self._offset(skipped, 1)).replace(tzinfo=UTC).timestamp())
        hi = int((skipped - self._offset(skipped, 0)).replace(tzinfo=UTC).timestamp())
        before = datetime.fromtimestamp(lo, self._tz).utcoffset()
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if datetime.fromtimestamp(mid, self._tz).utcoffset() == before:
                lo = mid
            else:
                hi = mid
        return datetime.fromtimestamp(hi, UTC)
