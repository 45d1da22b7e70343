"""A webhook receiver that fails at random, for the chaos test: 5xx, resets, hangs, slow answers.

A message counts as delivered only when it is recorded, and it is recorded only when the answer
is 200, so a failure the sender sees never hides a delivery. `healthy = True` stops the chaos.
"""

from __future__ import annotations

import json
import random
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = {"ok": 0.55, "error": 0.15, "reset": 0.1, "hang": 0.1, "slow": 0.1}


class FlakyReceiver:
    def __init__(self, seed: int, *, hang_s: float = 3.0, slow_s: float = 0.2) -> None:
        self.healthy = False
        self.hang_s = hang_s
        self.slow_s = slow_s
        self.bodies: list[Any] = []
        self.modes: list[str] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/hook"

    def __enter__(self) -> FlakyReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next_mode(self) -> str:
        with self._lock:
            mode = "ok" if self.healthy else self._choose()
            self.modes.append(mode)
            return mode

    def _choose(self) -> str:
        return self._rng.choices(list(MODES), weights=list(MODES.values()))[0]

    def _record(self, body: bytes) -> None:
        with self._lock:
            self.bodies.append(json.loads(body))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                mode = outer._next_mode()
                if mode == "reset":  # RST instead of an answer
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.close_connection = True
                    return
                if mode == "hang":  # longer than the sender's timeout; then hang up unrecorded
                    time.sleep(outer.hang_s)
                    self.close_connection = True
                    return
                if mode == "slow":
                    time.sleep(outer.slow_s)
                status = 503 if mode == "error" else 200
                if status == 200:
                    outer._record(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # senders that were killed or timed out hang up: that is the point
