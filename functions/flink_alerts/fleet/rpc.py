"""A signed call to an RPC-style Alibaba Cloud OpenAPI (foasconsole, STS): `METHOD /?Param=…`.

Confirmed against the official SDKs (alibabacloud-tea-openapi 0.4.x, the default signature):
RPC-style actions are signed exactly like GetEvents, with ACS3-HMAC-SHA256 (`flink/signer.py`):
path `/`, the parameters in the query string (PascalCase keys), an empty body (hash `e3b0…b855`,
even for STS's POST), and `x-acs-action`/`x-acs-version` headers instead of `Action`/`Version`
parameters. tests/integration/test_fleet_sdk.py checks it byte for byte.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import requests

from ..credentials import Credentials
from ..errors import ApiError, MalformedResponseError, error_field, server_text
from ..flink import signer

USER_AGENT = "flink-alerts/0.1"


class CallCount:
    """Requests sent by the RPC clients that share it: a run's foasconsole and STS calls."""

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self._count += 1

    @property
    def value(self) -> int:
        with self._lock:
            return self._count


class RpcClient:
    """One product and version at one endpoint; retries throttling, 5xx and lost connections."""

    def __init__(
        self,
        endpoint: str,
        credentials: Credentials,
        *,
        version: str,
        ram_code: str,
        timeout_s: float = 10.0,
        max_attempts: int = 3,
        session: requests.Session | None = None,
        backoff_s: float = 0.5,
        calls: CallCount | None = None,
    ) -> None:
        parts = urlsplit(endpoint)
        self.base, self.host = f"{parts.scheme}://{parts.netloc}", parts.netloc
        self.credentials = credentials
        self.version = version
        self.ram_code = ram_code  # `stream`, `sts`: the prefix of the RAM actions, for hints
        self.timeout_s = timeout_s
        self.max_attempts = max(1, max_attempts)
        self.session = session or requests.Session()
        self.backoff_s = backoff_s
        self.calls = calls or CallCount()  # every attempt, failed ones too

    def call(self, action: str, params: dict[str, Any], *, method: str = "GET") -> dict:
        query = {key: str(value) for key, value in params.items() if value is not None}
        for attempt in range(1, self.max_attempts + 1):
            try:
                return self._send(method, action, query)
            except ApiError as exc:
                if not exc.retryable or attempt == self.max_attempts:
                    raise
            time.sleep(random.uniform(0, self.backoff_s * 2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def prepare(
        self,
        method: str,
        action: str,
        query: dict[str, str],
        *,
        date: str,
        nonce: str,
        extra: dict[str, str] | None = None,
    ) -> tuple[str, dict[str, str]]:
        """The URL and the signed headers of one call (pure: tests compare it with the SDK's)."""
        headers = signer.sign_request(
            method,
            self.host,
            "/",
            query,
            extra or {"accept": "application/json", "user-agent": USER_AGENT},
            b"",
            self.credentials,
            action=action,
            version=self.version,
            date=date,
            nonce=nonce,
        )
        return f"{self.base}/?{urlencode(query, quote_via=quote, safe='~')}", headers

    def _send(self, method: str, action: str, query: dict[str, str]) -> dict:
        date, nonce = signer.acs_date(), signer.new_nonce()
        url, headers = self.prepare(method, action, query, date=date, nonce=nonce)
        self.calls.add()
        try:
            response = self.session.request(
                method, url, headers=headers, timeout=self.timeout_s, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise ApiError(
                f"{action}: {type(exc).__name__} at {self.host}", retryable=True
            ) from None
        return self._decode(action, response)

    def _decode(self, action: str, response: requests.Response) -> dict:
        try:
            body = response.json()
        except ValueError:
            body = None
        failed = isinstance(body, dict) and body.get("Success") is False
        if response.status_code >= 400 or failed:
            raise self._error(action, response.status_code, body if isinstance(body, dict) else {})
        if not isinstance(body, dict):
            raise MalformedResponseError(f"{action}: the response is not a JSON object")
        return body

    def _error(self, action: str, status: int, body: dict) -> ApiError:
        code = error_field(body, "Code", "code", "ErrorCode", "errorCode")
        message = error_field(body, "Message", "message", "ErrorMessage", "errorMessage")
        return ApiError(
            f"{action} failed: {server_text(message or f'HTTP {status}')}",
            code=code,
            request_id=error_field(body, "RequestId", "requestId"),
            http_status=status,
            retryable=code.startswith("Throttling") or status == 429 or status >= 500,
            hint=f"grant the RAM action {self.ram_code}:{action}" if _denied(code, status) else "",
        )


def _denied(code: str, status: int) -> bool:
    return status == 403 or any(
        word in code.lower() for word in ("forbidden", "noauth", "nopermission")
    )
