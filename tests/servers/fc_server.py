"""A local Function Compute 3.0 API for tests: InvokeFunction only, checked like FC checks it.

`POST /2023-03-30/functions/{name}/invocations`: the ACS3-HMAC-SHA256 signature (recomputed with
the secret) and its date (within 15 minutes), `x-acs-action: InvokeFunction`, `x-acs-version:
2023-03-30`, the body's sha256, a fresh nonce, the STS token when one is configured; unknown
functions get 404 FunctionNotFound.
An `x-fc-invocation-type: Async` call is queued: 202 with `x-fc-request-id`. Errors are FC's JSON
`{"Code", "Message", "RequestId"}`. `fail_next` answers the next N calls with 503.

    server = FcServer(functions={"flink-alerts"}).start()
    server.invocations      # [Invocation(function, invocation_type, body), ...]
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from flink_alerts.credentials import Credentials
from flink_alerts.flink import signer
from tests.servers.flink_server import _REQUIRED_SIGNED  # the same gateway rules

VERSION = "2023-03-30"


@dataclass(frozen=True)
class Invocation:
    function: str
    invocation_type: str
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


class FcError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class FcServer:
    def __init__(
        self,
        functions: set[str],
        access_key_id: str = "fc-key-id",
        access_key_secret: str = "fc-secret-DO-NOT-PRINT",
        security_token: str | None = None,
    ) -> None:
        self.functions = set(functions)
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.security_token = security_token
        self.invocations: list[Invocation] = []
        self.rejected: list[str] = []  # error codes answered
        self.fail_next = 0
        self._nonces: set[str] = set()
        self._lock = threading.Lock()
        self._http: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        assert self._http is not None
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    @property
    def credentials(self) -> Credentials:
        return Credentials(self.access_key_id, self.access_key_secret, self.security_token)

    def start(self) -> FcServer:
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._http.daemon_threads = True
        self._http.app = self  # type: ignore[attr-defined]
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, str]:
        request_id = uuid.uuid4().hex
        try:
            function = self._route(method, urlsplit(raw_path).path)
            self._authenticate(method, urlsplit(raw_path).path, headers, body)
            with self._lock:
                if self.fail_next > 0:
                    self.fail_next -= 1
                    raise FcError(503, "ServiceUnavailable", "Try again later.")
                if function not in self.functions:
                    raise FcError(404, "FunctionNotFound", f"function '{function}' does not exist")
                kind = headers.get("x-fc-invocation-type", "Sync")
                self.invocations.append(Invocation(function, kind, body))
            return (202 if kind == "Async" else 200), b"", request_id
        except FcError as exc:
            with self._lock:
                self.rejected.append(exc.code)
            answer = {"Code": exc.code, "Message": exc.message, "RequestId": request_id}
            return exc.status, json.dumps(answer).encode(), request_id

    @staticmethod
    def _route(method: str, path: str) -> str:
        parts = path.split("/")  # ["", "2023-03-30", "functions", NAME, "invocations"]
        if (
            method != "POST"
            or len(parts) != 5
            or parts[1:3] != [VERSION, "functions"]
            or parts[4] != "invocations"
        ):
            raise FcError(404, "PathNotFound", f"{method} {path} is not an FC 3.0 API")
        return unquote(parts[3])

    def _authenticate(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        auth = signer.parse_authorization(headers.get("authorization", ""))
        if auth is None or auth["Credential"] != self.access_key_id:
            raise FcError(403, "InvalidAccessKeyId", "the AccessKey is unknown or malformed")
        signed = auth["SignedHeaders"].split(";")
        required = _REQUIRED_SIGNED | ({"x-acs-security-token"} if self.security_token else set())
        if required - set(signed) or any(name not in headers for name in signed):
            raise FcError(400, "IncompleteSignature", "required headers are not signed")
        if self.security_token and headers.get("x-acs-security-token") != self.security_token:
            raise FcError(403, "InvalidSecurityToken", "the STS token is invalid")
        if not _recent(headers["x-acs-date"]):
            raise FcError(403, "InvalidTimeStamp.Expired", "x-acs-date is not within 15 minutes")
        if headers["x-acs-content-sha256"] != hashlib.sha256(body).hexdigest():
            raise FcError(400, "ContentSHA256NotMatch", "x-acs-content-sha256 does not match")
        canonical = signer.canonical_request(
            method,
            path,
            {},
            {name: headers[name] for name in signed},
            headers["x-acs-content-sha256"],
        )
        if not hmac.compare_digest(
            signer.signature(self.access_key_secret, canonical), auth["Signature"]
        ):
            raise FcError(403, "SignatureNotMatch", "the request signature does not match")
        if (
            headers.get("x-acs-action") != "InvokeFunction"
            or headers.get("x-acs-version") != VERSION
        ):
            raise FcError(
                400, "InvalidAction", "x-acs-action/x-acs-version must be InvokeFunction/2023-03-30"
            )
        with self._lock:
            if headers["x-acs-signature-nonce"] in self._nonces:
                raise FcError(400, "SignatureNonceUsed", "the nonce was used already")
            self._nonces.add(headers["x-acs-signature-nonce"])


def _recent(value: str) -> bool:
    try:
        sent = datetime.strptime(value, signer.DATE_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return False
    return abs((datetime.now(timezone.utc) - sent).total_seconds()) <= 15 * 60


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        self._answer()

    def do_GET(self) -> None:  # noqa: N802
        self._answer()

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, payload, request_id = self.server.app.handle(self.command, self.path, headers, body)  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-fc-request-id", request_id)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass
