"""A local OSS for tests: moto's S3 app behind a thin layer that speaks the OSS dialect oss2 needs.

moto alone is not enough for oss2 and for create-only writes:
- it ignores `x-oss-forbid-overwrite: true`; here a create-only PUT of an existing object gets the
  OSS answer, 409 `FileAlreadyExists`, and the existence check plus the write happen under one lock;
- its ListObjectsV2 rejects the empty parameters oss2 sends, answers in the S3 XML namespace and
  lacks the `Type` element oss2 requires; the layer fixes all three;
- GetBucketVersioning answers in the OSS shape (`VersioningConfiguration/Status`), and, as on OSS,
  `x-oss-forbid-overwrite` has no effect on a bucket whose versioning is Enabled or Suspended.

Usage (moto keeps buckets in process-wide state: give each test its own bucket):

    server = OssTestServer().start()
    bucket = server.create_bucket()          # unique name
    backend = OssBackend(bucket, "prefix", server.endpoint, creds)
    server.set_versioning(bucket, "Enabled")  # as PutBucketVersioning would
    server.stop()                            # now unreachable: connection refused

`python -m tests.servers.oss_server [PORT]` runs one in the foreground (for multi-process tests).
"""

from __future__ import annotations

import io
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
Captured = tuple[str, list[tuple[str, str]], bytes]

_FORBID_OVERWRITE = "HTTP_X_OSS_FORBID_OVERWRITE"
_S3_NAMESPACE = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_ALREADY_EXISTS_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Error>
  <Code>FileAlreadyExists</Code>
  <Message>The object you specified already exists and can not be overwritten.</Message>
  <RequestId>{request_id}</RequestId>
  <HostId>127.0.0.1</HostId>
  <EC>0016-00000708</EC>
</Error>
"""
_UNAVAILABLE: Captured = (
    "503 Service Unavailable",
    [("Content-Type", "application/xml")],
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>ServiceUnavailable</Code>"
    b"<Message>chaos</Message><RequestId>0</RequestId><HostId>127.0.0.1</HostId></Error>",
)


@dataclass(frozen=True)
class OssRequest:
    method: str
    path: str  # percent-decoded, e.g. /bucket/prefix/key/000000000001.json
    query: str
    forbid_overwrite: bool
    status: int


class _QuietHandler(MotoRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection, so stop() really cuts clients off

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class OssTestServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.requests: list[OssRequest] = []
        self.delay_s = 0.0  # set > 0 to make every answer slow (timeout tests)
        # fail(method) -> True answers 503 without touching the store (chaos: store errors)
        self.fail: Callable[[str], bool] | None = None
        self._app = create_backend_app("s3")
        self._write_lock = threading.Lock()
        self._log_lock = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> OssTestServer:
        self._server = make_server(
            self.host, self.port, self, threaded=True, request_handler=_QuietHandler
        )
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> OssTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"test-{uuid.uuid4().hex[:16]}"
        environ = _environ("PUT", f"/{name}")
        status, _, body = _call(self._app, environ)
        if not status.startswith("200"):
            raise RuntimeError(f"cannot create bucket {name}: {status} {body[:200]!r}")
        return name

    def set_versioning(self, bucket: str, status: str) -> None:
        """`Enabled` or `Suspended`, as the bucket owner would set it in the console."""
        body = f"<VersioningConfiguration><Status>{status}</Status></VersioningConfiguration>"
        environ = _environ("PUT", f"/{bucket}", "versioning", body.encode())
        status_line = _call(self._app, environ)[0]
        if not status_line.startswith("200"):
            raise RuntimeError(f"cannot set versioning of {bucket}: {status_line}")

    def versioning(self, bucket: str) -> str | None:
        """The bucket's versioning status: None (never enabled), `Enabled` or `Suspended`."""
        status, _, body = _call(self._app, _environ("GET", f"/{bucket}", "versioning"))
        if not status.startswith("200"):
            return None
        node = ET.fromstring(body).find(f"{_S3_NAMESPACE}Status")
        return node.text if node is not None else None

    def object_keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Keys as stored, for assertions (bypasses the request log)."""
        query = urlencode({"list-type": "2", "prefix": prefix, "max-keys": "1000"})
        status, _, body = _call(self._app, _environ("GET", f"/{bucket}/", query))
        if not status.startswith("200"):
            raise RuntimeError(f"cannot list bucket {bucket}: {status}")
        root = ET.fromstring(body)
        return [node.text or "" for node in root.iter(f"{_S3_NAMESPACE}Key")]

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if self.delay_s:
            time.sleep(self.delay_s)
        method = environ["REQUEST_METHOD"]
        forbid = environ.get(_FORBID_OVERWRITE, "").lower() == "true"
        if self.fail is not None and self.fail(method):
            _drain_upload(environ)
            status, headers, body = _UNAVAILABLE
        elif method == "PUT" and forbid and _is_object_path(environ):
            status, headers, body = self._create_only(environ)
        elif method == "GET" and _query_has_name(environ, "versioning"):
            status, headers, body = self._get_versioning(environ)
        elif method in ("PUT", "POST", "DELETE"):
            with self._write_lock:
                status, headers, body = _call(self._app, environ)
        elif method == "GET" and _query_has(environ, "list-type", "2"):
            status, headers, body = self._list_v2(environ)
        else:
            status, headers, body = _call(self._app, environ)
        self._log(environ, forbid, status)
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers += [("Content-Length", str(len(body))), ("x-oss-request-id", uuid.uuid4().hex)]
        start_response(status, headers)
        return [body]

    def _create_only(self, environ: Environ) -> Captured:
        bucket = environ.get("PATH_INFO", "").lstrip("/").partition("/")[0]
        with self._write_lock:
            if self.versioning(bucket) is not None:  # OSS ignores forbid-overwrite here
                return _call(self._app, environ)
            if _call(self._app, _as_head(environ))[0].startswith("200"):
                _drain_upload(environ)
                body = _ALREADY_EXISTS_XML.format(request_id=uuid.uuid4().hex).encode()
                return "409 Conflict", [("Content-Type", "application/xml")], body
            return _call(self._app, environ)

    def _get_versioning(self, environ: Environ) -> Captured:
        bucket = environ.get("PATH_INFO", "").strip("/")
        status, headers, body = _call(self._app, environ)
        if not status.startswith("200"):
            return status, headers, body
        answer = ET.Element("VersioningConfiguration")
        versioning = self.versioning(bucket)
        if versioning:
            ET.SubElement(answer, "Status").text = versioning
        body = ET.tostring(answer, encoding="utf-8", xml_declaration=True)
        return status, [("Content-Type", "application/xml")], body

    def _list_v2(self, environ: Environ) -> Captured:
        params = [(k, v) for k, v in parse_qsl(environ.get("QUERY_STRING", "")) if v]
        environ = {**environ, "QUERY_STRING": urlencode(params)}
        status, headers, body = _call(self._app, environ)
        if status.startswith("200"):
            body = _oss_listing(body)
        return status, headers, body

    def _log(self, environ: Environ, forbid: bool, status: str) -> None:
        entry = OssRequest(
            method=environ["REQUEST_METHOD"],
            path=environ.get("PATH_INFO", ""),
            query=environ.get("QUERY_STRING", ""),
            forbid_overwrite=forbid,
            status=int(status.split()[0]),
        )
        with self._log_lock:
            self.requests.append(entry)


def _is_object_path(environ: Environ) -> bool:
    bucket, _, key = environ.get("PATH_INFO", "").lstrip("/").partition("/")
    return bool(bucket and key and not environ.get("QUERY_STRING"))


def _drain_upload(environ: Environ) -> None:
    """Read the unused body: closing a socket with unread data resets it before the client reads."""
    remaining = int(environ.get("CONTENT_LENGTH") or 0)
    while remaining > 0:
        chunk = environ["wsgi.input"].read(min(remaining, 65536))
        if not chunk:
            break
        remaining -= len(chunk)


def _as_head(environ: Environ) -> Environ:
    """The same request as a HEAD, so moto resolves the key exactly as it would for the PUT."""
    head = {**environ, "REQUEST_METHOD": "HEAD", "CONTENT_LENGTH": "0", "wsgi.input": io.BytesIO()}
    for name in (_FORBID_OVERWRITE, "CONTENT_TYPE", "HTTP_CONTENT_MD5", "HTTP_TRANSFER_ENCODING"):
        head.pop(name, None)
    return head


def _query_has(environ: Environ, name: str, value: str) -> bool:
    return (name, value) in parse_qsl(environ.get("QUERY_STRING", ""))


def _query_has_name(environ: Environ, name: str) -> bool:
    return name in dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))


def _oss_listing(body: bytes) -> bytes:
    """moto's S3 ListBucketResult -> what oss2's parser expects from OSS."""
    root = ET.fromstring(body)
    for node in root.iter():
        node.tag = node.tag.removeprefix(_S3_NAMESPACE)
    for contents in root.iter("Contents"):
        if contents.find("Type") is None:
            ET.SubElement(contents, "Type").text = "Normal"
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _environ(method: str, path: str, query: str = "", body: bytes = b"") -> Environ:
    return {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "HTTP_HOST": "127.0.0.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def _call(app: Callable[[Environ, StartResponse], Iterable[bytes]], environ: Environ) -> Captured:
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        captured["status"], captured["headers"] = status, list(headers)

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return captured["status"], captured["headers"], body


if __name__ == "__main__":
    server = OssTestServer(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0).start()
    print(server.endpoint, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()
