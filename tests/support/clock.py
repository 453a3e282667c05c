"""A hand-driven clock for service tests: `Deps.clock` reads it, the test moves it."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from giobba_server.domain.clock import to_ms


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def ms(self) -> int:
        return to_ms(self.now)

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now
