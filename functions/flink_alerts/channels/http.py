"""What the HTTP channels share: one POST, failure classification, secret masking.

Error messages name a receiver by scheme and host only: webhook URLs carry their token in the
path or query, and request exceptions print the full URL, so their text is never passed on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import requests

from ..errors import DeliveryError
from ..scrub import mask as scrub
from ..scrub import url_secrets

JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}
# How much of a receiver's answer goes into an error message.
EXCERPT_CHARS = 200


def mask_url(url: str) -> str:
    """`https://oapi.dingtalk.com/robot/send?access_token=abc` -> `https://oapi.dingtalk.com`."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    return f"{parts.scheme or '?'}://{host}{port}"


def json_body(payload: Any) -> bytes:
    """The exact bytes sent (UTF-8, not \\u-escaped: receivers limit bytes, not characters)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def post(
    url: str,
    body: bytes,
    *,
    channel: str,
    timeout_s: float,
    headers: dict[str, str] | None = None,
    secrets: Iterable[str | None] = (),
) -> requests.Response:
    """POST `body`; connection failures and timeouts become retryable DeliveryErrors."""
    where = f"{channel} {mask_url(url)}"
    try:
        return requests.post(
            url, data=body, headers={**JSON_HEADERS, **(headers or {})}, timeout=timeout_s
        )
    except requests.Timeout:
        raise DeliveryError(f"{where}: timed out after {timeout_s:g}s", retryable=True) from None
    except requests.ConnectionError as exc:
        reason = _connection_reason(exc)
        fixable = reason == "TLS certificate not trusted"
        raise DeliveryError(
            f"{where}: cannot connect ({reason})", retryable=True, fixable=fixable
        ) from None
    except requests.RequestException as exc:
        # e.g. an invalid URL: trying again will not help. The text may hold the URL: drop it.
        raise DeliveryError(f"{where}: {type(exc).__name__}", retryable=False) from None


def _connection_reason(exc: requests.ConnectionError) -> str:
    """A short cause without the URL (urllib3's texts can include the host and path)."""
    inner = exc.args[0] if exc.args else exc
    reason = getattr(inner, "reason", None) or inner
    text = str(reason).lower()
    for needle, label in _REASONS:
        if needle in text:
            return label
    return type(reason).__name__


_REASONS = (
    ("refused", "connection refused"),
    ("name or service", "DNS lookup failed"),
    ("resolution", "DNS lookup failed"),
    ("reset", "connection reset"),
    ("certificate", "TLS certificate not trusted"),
    ("ssl", "TLS error"),
    ("timed out", "timed out"),
)


# Wrong credentials or a gone channel (Slack 403 action_prohibited, 404 channel_not_found,
# 410 channel_is_archived): a person fixes the receiver, the alert waits until max_age.
FIXABLE_STATUS = frozenset({401, 403, 404, 410})


def retry_after(response: requests.Response) -> float | None:
    """Seconds from a `Retry-After: 30` header (HTTP dates are rare for webhooks: ignored)."""
    value = response.headers.get("Retry-After", "").strip()
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None


def excerpt(response: requests.Response, secrets: Iterable[str | None] = ()) -> str:
    text = " ".join(response.text.split())[:EXCERPT_CHARS]
    return scrub(text, secrets)


def check_status(
    response: requests.Response, *, channel: str, url: str, secrets: Iterable[str | None] = ()
) -> None:
    """Raise for a non-2xx answer: 429 and 5xx retryable (with Retry-After), other 4xx permanent."""
    status = response.status_code
    if 200 <= status < 300:
        return
    secrets = [*secrets, *url_secrets(url)]
    message = f"{channel} {mask_url(url)}: HTTP {status} {excerpt(response, secrets)}".rstrip()
    if status == 429 or status >= 500:
        raise DeliveryError(message, retryable=True, retry_after=retry_after(response))
    raise DeliveryError(message, retryable=False, fixable=status in FIXABLE_STATUS)


def response_json(
    response: requests.Response, *, channel: str, url: str, secrets: Iterable[str | None] = ()
) -> dict[str, Any]:
    """The JSON object of a 2xx answer; anything else from a JSON API is a (retryable) glitch."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        text = excerpt(response, [*secrets, *url_secrets(url)])
        raise DeliveryError(
            f"{channel} {mask_url(url)}: unexpected answer (HTTP {response.status_code}) {text}",
            retryable=True,
        )
    return data


def answer_code(
    code: Any,
    text: str,
    *,
    field: str,
    where: str,
    throttled: set[int],
    transient: set[int],
    hints: dict[int, str],
    retry_after: float,
) -> str:
    """Classify a robot's `errcode`/`code` (sent even with HTTP 200): 0 is success; throttling
    and "system busy" are retryable; anything else is a configuration problem (permanent)."""
    try:
        number = int(code)
    except (TypeError, ValueError):
        number = None  # not a number: an unknown, permanent error
    if number == 0:
        return text or "ok"
    message = f"{where}: {field} {code} {text}".rstrip()
    if number in throttled:
        raise DeliveryError(message, retryable=True, retry_after=retry_after)
    if number in transient:
        raise DeliveryError(message, retryable=True)
    hint = hints.get(number, "") if number is not None else ""
    raise DeliveryError(message + hint, retryable=False, fixable=bool(hint))
