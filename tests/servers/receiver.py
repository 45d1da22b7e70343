"""A local HTTP receiver for end-to-end runs: records what arrives, can be down or slow."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ReceiverServer:
    """POST anything; `status` decides the answer (200 records the body, others don't)."""

    def __init__(self) -> None:
        self.status = 200
        self.delay_s = 0.0
        self.bodies: list[Any] = []
        self.attempts = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hook"

    def __enter__(self) -> ReceiverServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.lock:
                    outer.attempts += 1
                time.sleep(outer.delay_s)
                with outer.lock:
                    status = outer.status
                    if status == 200:
                        outer.bodies.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}' if status == 200 else b'{"error": "down"}')

            def log_message(self, *args: object) -> None:
                pass

        return Handler
