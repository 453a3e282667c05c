"""In-process fire lock: the embedded default, where one process is the only firer.

Keys expire like Redis keys so a long-running server does not keep every fire time it
ever saw; expired keys are dropped lazily, a few per call.
"""

import heapq
from collections.abc import Callable

from giobba_server.domain.clock import now_ms


class MemoryFireLock:
    def __init__(self, clock: Callable[[], int] = now_ms) -> None:
        self._clock = clock
        self._held: dict[str, int] = {}
        self._expiries: list[tuple[int, str]] = []

    async def acquire(self, key: str, ttl_ms: int) -> bool:
        now = self._clock()
        self._prune(now)
        if self._held.get(key, 0) > now:
            return False
        self._held[key] = now + ttl_ms
        heapq.heappush(self._expiries, (now + ttl_ms, key))
        return True

    def _prune(self, now: int) -> None:
        while self._expiries and self._expiries[0][0] <= now:
            deadline, key = heapq.heappop(self._expiries)
            if self._held.get(key) == deadline:
                del self._held[key]

    async def close(self) -> None:
        self._held.clear()
        self._expiries.clear()
