"""Cron schedule semantics: syntax, Vixie day rules, DST handling and sparse schedules."""

import pickle
import re
import time
import zoneinfo
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from importlib import metadata, resources
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from giobba_server.domain import zones
from giobba_server.domain.errors import InvalidArgument
from giobba_server.domain.schedule import CronSchedule, ScheduleError

NY = "America/New_York"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def fires(expression: str, after: str, count: int, zone: str = "UTC") -> list[str]:
    """The next `count` fire times as compact UTC strings, for readable assertions."""
    found = CronSchedule.parse(expression, zone).iter_after(utc(after))
    return [next(found).strftime("%Y-%m-%dT%H:%M:%SZ") for _ in range(count)]


# --- the brief's must-pass cases -------------------------------------------------------


def test_fixed_time_in_repeated_hour_fires_once_at_first_occurrence() -> None:
    assert fires("30 1 * * *", "2026-10-31T12:00-04:00", 3, NY) == [
        "2026-11-01T05:30:00Z",
        "2026-11-02T06:30:00Z",
        "2026-11-03T06:30:00Z",
    ]


def test_fixed_time_in_skipped_hour_fires_right_after_the_jump() -> None:
    assert fires("30 2 * * *", "2026-03-08T06:30Z", 3, NY) == [
        "2026-03-08T07:00:00Z",
        "2026-03-09T06:30:00Z",
        "2026-03-10T06:30:00Z",
    ]


def test_day_of_month_or_day_of_week_when_both_restricted() -> None:
    assert datetime(2026, 12, 1).strftime("%A") == "Tuesday"
    days = [int(t[8:10]) for t in fires("0 13 1-7 * 2", "2026-12-01T00:00Z", 11)]
    assert days == [1, 2, 3, 4, 5, 6, 7, 8, 15, 22, 29]
    assert fires("0 13 1-7 * 2", "2026-12-29T13:00Z", 1) == ["2027-01-01T13:00:00Z"]


def test_hour_range_with_step_fires_only_at_odd_hours() -> None:
    hours = [int(t[11:13]) for t in fires("0 1-23/2 * * *", "2026-05-01T00:00Z", 24)]
    assert hours == [*range(1, 24, 2)] * 2


def test_wildcard_hour_fires_in_both_copies_of_repeated_hour() -> None:
    assert fires("*/15 * * * *", "2026-11-01T04:50Z", 9, NY) == [
        "2026-11-01T05:00:00Z",  # 01:00 EDT
        "2026-11-01T05:15:00Z",
        "2026-11-01T05:30:00Z",
        "2026-11-01T05:45:00Z",
        "2026-11-01T06:00:00Z",  # 01:00 EST
        "2026-11-01T06:15:00Z",
        "2026-11-01T06:30:00Z",
        "2026-11-01T06:45:00Z",
        "2026-11-01T07:00:00Z",  # 02:00 EST
    ]


def test_six_fields_put_seconds_first() -> None:
    start = utc("2026-12-31T23:59:58Z")
    found = CronSchedule.parse("*/1 * * * * *").fire_times_between(
        start, start + timedelta(seconds=5), 10
    )
    assert found == [start + timedelta(seconds=n) for n in range(1, 6)]
    assert fires("10/15 30 12 * * *", "2026-01-01T00:00Z", 5) == [
        "2026-01-01T12:30:10Z",
        "2026-01-01T12:30:25Z",
        "2026-01-01T12:30:40Z",
        "2026-01-01T12:30:55Z",
        "2026-01-02T12:30:10Z",
    ]


# --- syntax ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "same_as"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@MIDNIGHT", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("0 0 * jan-mar mon-fri", "0 0 * 1-3 1-5"),
        ("0 0 * * SUN", "0 0 * * 7"),
        ("0 0 * * 5-7", "0 0 * * 0,5,6"),
        ("0 0 * * */2", "0 0 * * 0,2,4,6"),
        ("0 0 * * 1/2", "0 0 * * 1,3,5"),
        ("*/20 * * * *", "0,20,40 * * * *"),
        ("10/15 * * * *", "10,25,40,55 * * * *"),
        ("0 0 * * 1#2", "0 0 * * mon#2"),
        ("0 0 * * 5L", "0 0 * * FRIL"),
        ("0 0 * * *", "0 0 0 * * *"),
    ],
)
def test_equivalent_spellings(expression: str, same_as: str) -> None:
    after = "2026-01-01T00:00Z"
    assert fires(expression, after, 40) == fires(same_as, after, 40)


def test_steps_ranges_and_lists() -> None:
    minutes = [int(t[14:16]) for t in fires("*/5 3 * * *", "2026-01-01T00:00Z", 12)]
    assert minutes == list(range(0, 60, 5))
    assert fires("15,45 8-9 * * *", "2026-01-01T00:00Z", 5) == [
        "2026-01-01T08:15:00Z",
        "2026-01-01T08:45:00Z",
        "2026-01-01T09:15:00Z",
        "2026-01-01T09:45:00Z",
        "2026-01-02T08:15:00Z",
    ]


def test_vixie_star_prefix_makes_a_day_field_unrestricted() -> None:
    # '*/2' starts with '*', so the days must be odd AND Mondays (not odd OR Monday).
    days = [t[:10] for t in fires("0 0 */2 * MON", "2026-05-31T00:00Z", 3)]
    assert days == ["2026-06-01", "2026-06-15", "2026-06-29"]
    assert [t[:10] for t in fires("0 0 * * MON", "2026-06-01T00:00Z", 2)] == [
        "2026-06-08",
        "2026-06-15",
    ]
    assert [t[:10] for t in fires("0 0 13 * *", "2026-06-01T00:00Z", 2)] == [
        "2026-06-13",
        "2026-07-13",
    ]


def test_last_day_of_month() -> None:
    days = [t[:10] for t in fires("0 0 L * *", "2027-12-01T00:00Z", 4)]
    assert days == ["2027-12-31", "2028-01-31", "2028-02-29", "2028-03-31"]
    assert [t[:10] for t in fires("0 0 15,L 2 *", "2026-01-01T00:00Z", 2)] == [
        "2026-02-15",
        "2026-02-28",
    ]


def test_last_and_nth_weekday() -> None:
    last_fridays = [t[:10] for t in fires("0 0 * * 5L", "2026-01-01T00:00Z", 3)]
    assert last_fridays == ["2026-01-30", "2026-02-27", "2026-03-27"]
    second_mondays = [t[:10] for t in fires("0 0 * * 1#2", "2026-01-01T00:00Z", 3)]
    assert second_mondays == ["2026-01-12", "2026-02-09", "2026-03-09"]
    fifth_sundays = [t[:10] for t in fires("0 0 * * 7#5", "2026-01-01T00:00Z", 2)]
    assert fifth_sundays == ["2026-03-29", "2026-05-31"]


def test_february_30_with_a_weekday_fires_on_the_weekday() -> None:
    # Both day fields restricted: the impossible day-of-month is OR-ed with Mondays.
    days = [t[:10] for t in fires("0 0 30 2 MON", "2026-01-01T00:00Z", 2)]
    assert days == ["2026-02-02", "2026-02-09"]


@pytest.mark.parametrize(
    ("field", "expression", "zone", "reason"),
    [
        ("schedule", "", "UTC", "expected 5 or 6 fields or an @macro, got 0"),
        ("schedule", "* * * *", "UTC", "got 4 fields"),
        ("schedule", "0 0 1 1 * 2030", "UTC", "field 'day-of-week' value 2030 out of range 0-7"),
        ("schedule", "* * * * * * *", "UTC", "got 7 fields"),
        ("schedule", "0 25 * * *", "UTC", "field 'hour' value 25 out of range 0-23"),
        ("schedule", "60 * * * *", "UTC", "field 'minute' value 60 out of range 0-59"),
        ("schedule", "0 0 0 * *", "UTC", "field 'day-of-month' value 0 out of range 1-31"),
        ("schedule", "0 0 * 13 *", "UTC", "field 'month' value 13 out of range 1-12"),
        ("schedule", "0 0 * * 8", "UTC", "field 'day-of-week' value 8 out of range 0-7"),
        ("schedule", "0 0 * FOO *", "UTC", "field 'month' has invalid value 'FOO'"),
        ("schedule", "0 0 * * 1-x", "UTC", "invalid value 'x'"),
        ("schedule", "5-2 * * * *", "UTC", "range '5-2' runs backwards"),
        ("schedule", "*/0 * * * *", "UTC", "step '0' out of range 1-60"),
        ("schedule", "*/ * * * *", "UTC", "step '' out of range"),
        ("schedule", "1,,2 * * * *", "UTC", "empty list item"),
        ("schedule", "0 0 15W * *", "UTC", "'W' (nearest weekday) is not supported"),
        ("schedule", "0 0 LW * *", "UTC", "'W' (nearest weekday) is not supported"),
        ("schedule", "0 0 L-2 * *", "UTC", "only a bare 'L'"),
        ("schedule", "0 0 ? * 1", "UTC", "'?' is not supported"),
        ("schedule", "0 0 * * L", "UTC", "bare 'L' is ambiguous"),
        ("schedule", "0 0 * * 1#6", "UTC", "after '#' must be 1-5"),
        ("schedule", "0 0 L/2 * *", "UTC", "only a bare 'L'"),
        ("schedule", "H * * * *", "UTC", "field 'minute' has invalid value 'H'"),
        ("schedule", "@reboot", "UTC", "'@reboot' is not supported"),
        ("schedule", "@every 5m", "UTC", "got 2 fields"),
        ("schedule", "@fortnightly", "UTC", "unknown macro '@fortnightly'"),
        ("schedule", "0 0 30 2 *", "UTC", "never fires"),
        ("schedule", "0 0 31 4,6,9,11 *", "UTC", "never fires"),
        ("schedule", "0 0 31 2 */7", "UTC", "never fires"),
        ("timezone", "* * * * *", "Mars/Base", "unknown zone 'Mars/Base'"),
        ("timezone", "* * * * *", "", "unknown zone ''"),
        ("timezone", "* * * * *", "utc", "unknown zone 'utc'"),
        ("timezone", "* * * * *", "../etc/passwd", "unknown zone"),
        ("timezone", "* * * * *", "/etc/localtime", "unknown zone"),
        ("timezone", "* * * * *", "America", "unknown zone"),
        ("timezone", "* * * * *", "localtime", "names the host's zone"),
    ],
)
def test_invalid_input_names_the_field_and_reason(
    field: str, expression: str, zone: str, reason: str
) -> None:
    with pytest.raises(ScheduleError) as caught:
        CronSchedule.parse(expression, zone)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert reason in str(caught.value)


def test_schedule_error_is_a_value_error_and_an_invalid_argument() -> None:
    with pytest.raises(ScheduleError) as caught:
        CronSchedule.parse("0 0 30 2 *")
    error = caught.value
    assert isinstance(error, ValueError)
    assert isinstance(error, InvalidArgument)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.field, copy.reason, str(copy)) == (error.field, error.reason, str(error))


def test_an_overlong_expression_is_refused_but_every_value_listed_fits() -> None:
    every = ",".join(str(v) for v in range(60))
    CronSchedule.parse(f"{every} {every} * * * *")
    with pytest.raises(ScheduleError, match="schedule: is longer than 1024 characters"):
        CronSchedule.parse("1," * 100_000 + "1 * * * *")


def test_non_string_input_is_rejected() -> None:
    with pytest.raises(ScheduleError, match="schedule: must be a string"):
        CronSchedule.parse(5)  # type: ignore[arg-type]
    with pytest.raises(ScheduleError, match="timezone: must be a string"):
        CronSchedule.parse("* * * * *", None)  # type: ignore[arg-type]


def test_value_semantics() -> None:
    first = CronSchedule.parse("0 9 * * MON-FRI", "Europe/Rome")
    assert first == CronSchedule("0 9 * * MON-FRI", "Europe/Rome")
    assert hash(first) == hash(CronSchedule("0 9 * * MON-FRI", "Europe/Rome"))
    assert first != CronSchedule("0 9 * * MON-FRI", "UTC")
    assert CronSchedule.parse("* * * * *").timezone == "UTC"
    with pytest.raises(AttributeError):
        first.expression = "* * * * *"  # type: ignore[misc]
    with pytest.raises(ScheduleError):
        CronSchedule("0 0 30 2 *")  # the constructor validates too


# --- API edges -----------------------------------------------------------------------


def test_next_after_is_strict_and_accepts_any_offset() -> None:
    schedule = CronSchedule.parse("0 12 * * *")
    noon = utc("2026-05-01T12:00Z")
    assert schedule.next_after(noon) == utc("2026-05-02T12:00Z")
    assert schedule.next_after(noon - timedelta(microseconds=1)) == noon
    in_tokyo = noon.astimezone(ZoneInfo("Asia/Tokyo")) - timedelta(seconds=1)
    found = schedule.next_after(in_tokyo)
    assert found == noon
    assert found.tzinfo is UTC


def test_naive_datetimes_are_refused() -> None:
    schedule = CronSchedule.parse("* * * * *")
    with pytest.raises(ValueError, match="after must be a timezone-aware datetime"):
        schedule.next_after(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="end_inclusive must be a timezone-aware datetime"):
        schedule.fire_times_between(utc("2026-01-01T00:00Z"), datetime(2026, 1, 2), 5)
    with pytest.raises(ValueError, match="start_exclusive must be a timezone-aware datetime"):
        schedule.fire_times_between(datetime(2026, 1, 1), utc("2026-01-02T00:00Z"), 5)


def test_fire_times_between_bounds_and_limit() -> None:
    schedule = CronSchedule.parse("0 * * * *")
    start, end = utc("2026-01-01T00:00Z"), utc("2026-01-01T05:00Z")
    hours = [t.hour for t in schedule.fire_times_between(start, end, 100)]
    assert hours == [1, 2, 3, 4, 5]  # start exclusive, end inclusive
    assert len(schedule.fire_times_between(start, end, 2)) == 2
    assert schedule.fire_times_between(start, end, 0) == []
    assert schedule.fire_times_between(end, start, 10) == []
    with pytest.raises(ValueError, match="limit"):
        schedule.fire_times_between(start, end, -1)


def test_iteration_ends_at_the_end_of_the_calendar() -> None:
    schedule = CronSchedule.parse("0 0 1 1 *")
    assert list(schedule.iter_after(utc("9998-06-01T00:00Z"))) == [utc("9999-01-01T00:00Z")]
    with pytest.raises(OverflowError):
        schedule.next_after(utc("9999-01-01T00:00Z"))


def test_result_does_not_depend_on_the_host_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = fires("30 2 * * *", "2026-03-08T06:30Z", 2, NY)
    try:
        for host_zone in ("Asia/Kathmandu", "America/St_Johns", "Pacific/Kiritimati"):
            monkeypatch.setenv("TZ", host_zone)
            time.tzset()
            assert time.localtime(0).tm_zone != "UTC"
            assert fires("30 2 * * *", "2026-03-08T06:30Z", 2, NY) == expected
            assert fires("0 0 * * *", "2026-01-01T00:00Z", 1) == ["2026-01-02T00:00:00Z"]
    finally:
        monkeypatch.undo()
        time.tzset()


def test_zone_rules_come_from_the_pinned_package_not_the_host(tmp_path: Path) -> None:
    # A host whose "America/New_York" holds Tokyo's rules: fire times must not follow it,
    # or two servers on different hosts would derive different run ids for one fire.
    expected = fires("30 2 * * *", "2026-03-08T06:30Z", 2, NY)
    (tmp_path / "America").mkdir()
    tokyo = resources.files("tzdata").joinpath("zoneinfo", "Asia", "Tokyo")
    (tmp_path / "America" / "New_York").write_bytes(tokyo.read_bytes())
    try:
        zoneinfo.reset_tzpath(to=[str(tmp_path)])
        zoneinfo.ZoneInfo.clear_cache()
        zones.load_zone.cache_clear()
        assert zoneinfo.ZoneInfo(NY).utcoffset(utc("2026-01-01T00:00Z")) == timedelta(hours=9)
        assert fires("30 2 * * *", "2026-03-08T06:30Z", 2, NY) == expected
    finally:
        zoneinfo.reset_tzpath()
        zoneinfo.ZoneInfo.clear_cache()


@pytest.mark.parametrize(
    "key", ["../../etc/passwd", "Europe/../UTC", "/etc/localtime", "leapseconds", "Europe", ""]
)
def test_a_key_that_is_not_a_zone_is_refused_naming_timezone(key: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        CronSchedule.parse("* * * * *", key)
    assert caught.value.field == "timezone"


def test_the_zone_rules_are_the_pinned_release() -> None:
    pyproject = Path(__file__).parents[2] / "pyproject.toml"
    pin = re.search(r'"tzdata==([^"]+)"', pyproject.read_text())
    assert pin is not None, "tzdata must be pinned exactly in pyproject.toml"
    assert metadata.version("tzdata") == pin.group(1)
    assert zones.RULES_VERSION  # e.g. "2026f", shown so operators can compare servers


# --- sparse schedules ------------------------------------------------------------------


def test_sparse_schedules_skip_by_calendar() -> None:
    # Stepping second by second these would take billions of iterations; they must not.
    assert fires("0 0 29 2 *", "2026-01-01T00:00Z", 1) == ["2028-02-29T00:00:00Z"]
    assert fires("0 0 29 2 *", "2096-03-01T00:00Z", 1) == ["2104-02-29T00:00:00Z"]
    assert fires("0 0 31 * *", "2026-04-01T00:00Z", 3) == [
        "2026-05-31T00:00:00Z",
        "2026-07-31T00:00:00Z",
        "2026-08-31T00:00:00Z",
    ]
    # Feb 29 that is also a Sunday ('*/7' is "unrestricted", so both must match).
    assert fires("59 59 23 29 2 */7", "2088-03-01T00:00Z", 1) == ["2128-02-29T23:59:59Z"]
    assert fires("0 12 29 2 *", "2096-03-01T00:00Z", 1, "Pacific/Chatham") == [
        "2104-02-28T22:15:00Z"
    ]


# --- DST -------------------------------------------------------------------------------


def test_fixed_hour_with_minute_steps_fires_once_in_the_gap() -> None:
    # 02:00-02:45 do not exist on 2026-03-08: one fire at 03:00 EDT, then 02:00 next day.
    assert fires("*/15 2 * * *", "2026-03-08T06:00Z", 3, NY) == [
        "2026-03-08T07:00:00Z",
        "2026-03-09T06:00:00Z",
        "2026-03-09T06:15:00Z",
    ]


def test_fixed_time_in_gap_and_at_jump_fire_once() -> None:
    assert fires("0 2,3 * * *", "2026-03-08T05:00Z", 3, NY) == [
        "2026-03-08T07:00:00Z",
        "2026-03-09T06:00:00Z",
        "2026-03-09T07:00:00Z",
    ]


def test_wildcard_hour_loses_skipped_times() -> None:
    assert fires("0 * * * *", "2026-03-08T05:30Z", 3, NY) == [
        "2026-03-08T06:00:00Z",  # 01:00 EST
        "2026-03-08T07:00:00Z",  # 03:00 EDT; 02:00 never existed
        "2026-03-08T08:00:00Z",
    ]
    assert fires("30 */2 * * *", "2026-03-08T05:00Z", 2, NY) == [
        "2026-03-08T05:30:00Z",  # 00:30 EST; 02:30 never existed
        "2026-03-08T08:30:00Z",  # 04:30 EDT
    ]


def test_stepped_hour_fires_in_both_copies_fixed_range_once() -> None:
    assert fires("0 1-23/2 * * *", "2026-11-01T04:00Z", 3, NY) == [
        "2026-11-01T05:00:00Z",  # 01:00 EDT
        "2026-11-01T06:00:00Z",  # 01:00 EST
        "2026-11-01T08:00:00Z",  # 03:00 EST
    ]
    assert fires("*/30 1-2 * * *", "2026-11-01T04:00Z", 4, NY) == [
        "2026-11-01T05:00:00Z",  # 01:00 EDT
        "2026-11-01T05:30:00Z",  # 01:30 EDT; the EST copies do not fire
        "2026-11-01T07:00:00Z",  # 02:00 EST
        "2026-11-01T07:30:00Z",
    ]


def test_after_inside_second_copy_does_not_refire_fixed_time() -> None:
    after = "2026-11-01T06:10Z"  # 01:10 EST, the second 01:10 of the day
    assert fires("30 1 * * *", after, 1, NY) == ["2026-11-02T06:30:00Z"]
    assert fires("30 * * * *", after, 2, NY) == ["2026-11-01T06:30:00Z", "2026-11-01T07:30:00Z"]


def test_half_hour_dst_shift() -> None:
    # Lord Howe moves 30 minutes: 02:00 -> 02:30 on 2026-10-04, 02:00 -> 01:30 on 2026-04-05.
    zone = "Australia/Lord_Howe"
    assert fires("15 2 * * *", "2026-10-02T16:00Z", 2, zone) == [
        "2026-10-03T15:30:00Z",  # 02:30 +11, right after the jump
        "2026-10-04T15:15:00Z",  # 02:15 +11
    ]
    assert fires("45 1 * * *", "2026-04-04T00:00Z", 2, zone) == [
        "2026-04-04T14:45:00Z",  # 01:45 +11, first copy only
        "2026-04-05T15:15:00Z",  # 01:45 +10:30
    ]


def test_midnight_transitions() -> None:
    # Chile jumps 00:00 -> 01:00 (2026-09-06) and repeats 23:00 on 2026-04-04.
    zone = "America/Santiago"
    assert fires("0 0 * * *", "2026-09-05T05:00Z", 2, zone) == [
        "2026-09-06T04:00:00Z",  # the jump, 01:00 -03
        "2026-09-07T03:00:00Z",
    ]
    assert fires("30 23 * * *", "2026-04-04T12:00Z", 2, zone) == [
        "2026-04-05T02:30:00Z",  # 23:30 -03, first copy
        "2026-04-06T03:30:00Z",  # 23:30 -04
    ]
    assert fires("30 * * * *", "2026-04-05T01:00Z", 3, zone) == [
        "2026-04-05T01:30:00Z",  # 22:30 -03
        "2026-04-05T02:30:00Z",  # 23:30 -03
        "2026-04-05T03:30:00Z",  # 23:30 -04
    ]


def test_skipped_whole_day() -> None:
    # Samoa skipped 2011-12-30: the noon fire moves to the jump, then resumes.
    assert fires("0 12 * * *", "2011-12-29T12:00Z", 3, "Pacific/Apia") == [
        "2011-12-29T22:00:00Z",  # 12:00 on the 29th, -10
        "2011-12-30T10:00:00Z",  # the jump: 00:00 on the 31st, +14
        "2011-12-30T22:00:00Z",  # 12:00 on the 31st, +14
    ]


# --- brute-force cross-check around transitions -----------------------------------------

WallRule = Callable[[datetime], bool]

CROSS_CHECK: list[tuple[str, WallRule, bool]] = [
    # expression, wall-time predicate, hour field is a wildcard or step
    ("*/15 * * * *", lambda w: w.minute % 15 == 0, True),
    ("0 * * * *", lambda w: w.minute == 0, True),
    ("45 */2 * * *", lambda w: w.minute == 45 and w.hour % 2 == 0, True),
    ("30 1 * * *", lambda w: (w.hour, w.minute) == (1, 30), False),
    ("30 2 * * *", lambda w: (w.hour, w.minute) == (2, 30), False),
    ("*/20 1-3 * * *", lambda w: 1 <= w.hour <= 3 and w.minute % 20 == 0, False),
    ("10 0,23 * * *", lambda w: w.hour in (0, 23) and w.minute == 10, False),
    ("0 0 * * *", lambda w: (w.hour, w.minute) == (0, 0), False),
]

WINDOWS = [
    ("America/New_York", "2026-03-07T12:00Z"),
    ("America/New_York", "2026-10-31T12:00Z"),
    ("Europe/London", "2026-03-28T12:00Z"),
    ("Europe/London", "2026-10-24T12:00Z"),
    ("Australia/Lord_Howe", "2026-04-04T00:00Z"),
    ("Australia/Lord_Howe", "2026-10-03T00:00Z"),
    ("America/Santiago", "2026-04-04T12:00Z"),
    ("America/Santiago", "2026-09-05T12:00Z"),
    ("Pacific/Apia", "2011-12-29T00:00Z"),
]


def walk(zone: str, start: datetime, hours: int) -> Iterator[tuple[datetime, datetime, datetime]]:
    """Each UTC minute with its local wall time and the previous minute's wall time."""
    tz = ZoneInfo(zone)
    previous = start.astimezone(tz)
    for n in range(1, hours * 60 + 1):
        local = (start + timedelta(minutes=n)).astimezone(tz)
        yield local.astimezone(UTC), local, previous
        previous = local


def reference(rule: WallRule, wildcard: bool, zone: str, start: datetime) -> list[datetime]:
    """The DST rules stated directly, minute by minute over 48 hours."""
    found = []
    for instant, local, previous in walk(zone, start, 48):
        wall, before = local.replace(tzinfo=None), previous.replace(tzinfo=None)
        skipped = (wall - before) // timedelta(minutes=1) - 1
        in_gap = any(rule(before + timedelta(minutes=k)) for k in range(1, skipped + 1))
        if (in_gap and not wildcard) or (rule(wall) and (wildcard or local.fold == 0)):
            found.append(instant)
    return found


@pytest.mark.parametrize(("zone", "start"), WINDOWS)
@pytest.mark.parametrize(("expression", "rule", "wildcard"), CROSS_CHECK)
def test_matches_brute_force_reference(
    zone: str, start: str, expression: str, rule: WallRule, wildcard: bool
) -> None:
    begin = utc(start)
    expected = reference(rule, wildcard, zone, begin)
    schedule = CronSchedule.parse(expression, zone)
    assert schedule.fire_times_between(begin, begin + timedelta(hours=48), 1000) == expected
