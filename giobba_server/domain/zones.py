"""IANA time zones from the pinned `tzdata` package, never from the host.

Every server must compute the same fire times for a job, because a run's id is derived from
its scheduled time: two servers reading different host tzdata releases (a zone whose rules
changed between them) would fire the same job at different instants and create two runs.
Reading the rules from one pinned package makes the schedule a function of Giobba's version
alone.
"""

import re
from functools import cache
from importlib import resources
from zoneinfo import ZoneInfo

import tzdata

# What an IANA key looks like: no dots, so no path tricks and no package files.
_KEY = re.compile(r"^[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*$")

RULES_VERSION: str = tzdata.IANA_VERSION


class UnknownZone(ValueError):
    """The key names no zone in the pinned rules."""


@cache
def load_zone(key: str) -> ZoneInfo:
    """The zone named `key`; raises UnknownZone. Cached: a zone is read once per process
    (only keys that exist are cached, so the cache is bounded by the zone list)."""
    if len(key) > 100 or not _KEY.fullmatch(key):
        raise UnknownZone(key)
    entry = resources.files("tzdata").joinpath("zoneinfo", *key.split("/"))
    if not entry.is_file():
        raise UnknownZone(key)
    try:
        with entry.open("rb") as rules:
            return ZoneInfo.from_file(rules, key=key)
    except ValueError:  # a data file next to the zones ("leapseconds"), not TZif
        raise UnknownZone(key) from None
