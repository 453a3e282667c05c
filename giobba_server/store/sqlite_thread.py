"""One SQLite connection, owned by one thread: the stores' shared plumbing.

sqlite3 calls block, so each store runs them on a single thread of its own, in order, and
awaits them from the event loop; SQLite errors become `Unavailable` naming the store.
"""

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from giobba_server.domain.errors import Unavailable

T = TypeVar("T")


def connect(path: str, schema: str) -> sqlite3.Connection:
    """Open (creating the folder), in WAL mode, and apply the schema."""
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(schema)
    return conn


class SqliteThread:
    def __init__(self, what: str) -> None:
        self._what = what  # names the store in errors: "sqlite", "sqlite feed", ...
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"giobba-{what}")
        self.conn: sqlite3.Connection | None = None

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except sqlite3.OperationalError as exc:
            raise Unavailable(f"{self._what}: {exc}") from exc

    def db(self) -> sqlite3.Connection:
        if self.conn is None:
            raise Unavailable(f"{self._what}: not open")
        return self.conn

    async def close(self) -> None:
        if self.conn is not None:
            await self.call(self.conn.close)
            self.conn = None
        self._executor.shutdown(wait=True)
