"""A real HTTP callback receiver on 127.0.0.1, run in threads, scripted per path.

A path's script is a list of actions, one per request (the last one repeats): an HTTP
status to answer with, or HANG to hold the request unanswered until the receiver closes.
Every request is recorded (path, headers, body, arrival time).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG = -1


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() on arrival

    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value

    @property
    def delivery_id(self) -> str:
        return self.headers.get("giobba-delivery-id", "")


class Receiver:
    def __init__(self, port: int = 0) -> None:
        self.scripts: dict[str, list[int]] = {}
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._counts: dict[str, int] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                action = receiver._record(Received(self.path, headers, body, time.time()))
                if action == HANG:
                    receiver._closing.wait()
                    return
                self.send_response(action)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # the default 5 drops SYNs under a burst of POSTs

        self._server = Server(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *actions: int) -> str:
        self.scripts[path] = list(actions)
        return self.url(path)

    def _record(self, item: Received) -> int:
        with self._lock:
            self.received.append(item)
            n = self._counts.get(item.path, 0)
            self._counts[item.path] = n + 1
        script = self.scripts.get(item.path) or [200]
        return script[min(n, len(script) - 1)]

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
