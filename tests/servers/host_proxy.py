"""An HTTP proxy on 127.0.0.1 that hands each request to the local server named by its host.

With `HTTP_PROXY` pointing here, a client configured with the real host names
(`http://ververica.{region}.aliyuncs.com`, `http://sts.aliyuncs.com`) reaches the local server
registered for that host, so a request sent to the wrong region's endpoint really fails.

    with HostProxy({"ververica.cn-hangzhou.aliyuncs.com": flink_a, ...}) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


class HostProxy:
    def __init__(self, servers: dict[str, Any]) -> None:
        """`servers`: host name -> a local server with `handle(method, path, headers, body)`."""
        self.servers = servers
        self.hosts_seen: list[str] = []
        handler = type("Handler", (_Handler,), {"proxy": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> HostProxy:
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    proxy: HostProxy
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self._forward()

    def do_POST(self) -> None:  # noqa: N802
        self._forward()

    def _forward(self) -> None:
        target = urlsplit(self.path)  # absolute-form: http://host/path?query
        host = target.netloc
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.proxy.hosts_seen.append(host)
        server = self.proxy.servers.get(host)
        if server is None:
            status, payload, kind = 502, f"unknown host {host}".encode(), "text/plain"
        else:
            path = target.path + (f"?{target.query}" if target.query else "")
            reply = server.handle(self.command, path, headers, body)
            status, payload, kind = reply.status, reply.body, reply.content_type
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass
