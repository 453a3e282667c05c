"""Retry backoff: exponential with jitter, capped."""

import random
from datetime import timedelta

DEFAULT_BASE = timedelta(seconds=1)
DEFAULT_CAP = timedelta(minutes=10)


def backoff(
    retry_number: int,
    base: timedelta = DEFAULT_BASE,
    cap: timedelta = DEFAULT_CAP,
    rng: random.Random | None = None,
) -> timedelta:
    """Delay before retry `retry_number` (1 for the first retry).

    "Equal jitter": half the exponential step is kept, half is random, so retries spread
    out (no thundering herd) yet never come back sooner than half the nominal delay.
    """
    exponent = min(max(retry_number - 1, 0), 32)
    step = min(cap.total_seconds(), base.total_seconds() * (2**exponent))
    draw = (rng or random).uniform(0, step / 2)
    return timedelta(seconds=step / 2 + draw)
