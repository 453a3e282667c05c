"""Server logging: `log.level`, and `log.format` text (key=value friendly) or JSON lines.

Log calls in Giobba name ids, states, counts and outcomes, never payloads, results,
callback bodies or URLs, and connection strings are redacted before they are logged.
httpx logs every request URL at INFO (a callback URL may carry a token): it is held to
WARNING. At DEBUG, the drivers' own chatter (asyncio, grpc, pymongo's command and
heartbeat logs, redis) would bury Giobba's lines: they stay at INFO.
"""

import json
import logging
from datetime import UTC, datetime

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str, fmt: str) -> None:
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    for chatty in ("asyncio", "grpc", "grpc._cython", "pymongo", "redis", "aiosqlite"):
        logging.getLogger(chatty).setLevel(max(logging.INFO, root.level))
