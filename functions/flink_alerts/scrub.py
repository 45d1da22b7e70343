"""The one secret scrubber: every text that leaves the process goes through `scrub`.

It knows every configured secret (AccessKey secret, STS token, webhook URLs and their tokens,
signing secrets, SMTP passwords, webhook header values) and masks each wherever it appears,
also in its URL-encoded and JSON-escaped forms, since servers echo what they were sent.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from pydantic import BaseModel, SecretStr

MASK = "***"
# Shorter values would mask ordinary text everywhere (a header value `false` would break the
# summary's JSON); they are too short to be real secrets.
MIN_SECRET_CHARS = 6
# A path segment this long in a webhook URL is a token (Slack's T/B/XXXX, Feishu's hook id).
TOKEN_SEGMENT_CHARS = 16
_SIGNATURES = re.compile(r"\b(Signature|signature|sign|access_token)=[^\s&,;\"']+")


def url_secrets(url: str) -> list[str]:
    """The parts of a webhook URL that may be a token: the URL, its query values, long segments."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    raw_values = [item.partition("=")[2] for item in parts.query.split("&")]
    values = [value for _, value in parse_qsl(parts.query)]
    segments = [s for s in parts.path.split("/") if len(s) >= TOKEN_SEGMENT_CHARS]
    path = [parts.path] if segments else []
    return [url, f"{parts.netloc}{parts.path}", parts.query, *raw_values, *values, *segments, *path]


def variants(secret: str) -> set[str]:
    """The forms a secret takes when echoed: as is, URL-encoded, JSON- or repr-escaped."""
    forms = {secret, quote(secret, safe=""), quote(secret), repr(secret)[1:-1]}
    forms |= {json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    return {form for form in forms if len(form) >= MIN_SECRET_CHARS}


def longest_first(secrets: Iterable[str | None]) -> tuple[str, ...]:
    """Maskable secrets, longest first, so that no piece of a longer one survives a shorter one."""
    found = {secret for secret in secrets if secret and len(secret) >= MIN_SECRET_CHARS}
    return tuple(sorted(found, key=len, reverse=True))


def mask(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every secret in `text` with `***`."""
    for secret in longest_first(secrets):
        text = text.replace(secret, MASK)
    return text


class Scrubber:
    """The process's known secrets: those of the loaded configuration, and every credential seen."""

    def __init__(self) -> None:
        self._configured: frozenset[str] = frozenset()
        self._credentials: frozenset[str] = frozenset()
        self._ordered: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def configure(self, settings: BaseModel) -> None:
        """Replace the configuration's secrets with those of `settings` (every SecretStr in it)."""
        found = {form for secret in secrets_of(settings) for form in variants(secret)}
        with self._lock:
            self._configured = frozenset(found)
            self._ordered = longest_first(self._configured | self._credentials)

    def remember(self, *secrets: str | None) -> None:
        """Add credentials (AccessKey secret, STS token); they stay known for the process."""
        found = {form for secret in secrets if secret for form in variants(secret)}
        with self._lock:
            self._credentials |= found
            self._ordered = longest_first(self._configured | self._credentials)

    def __call__(self, text: str) -> str:
        for secret in self._ordered:
            text = text.replace(secret, MASK)
        return _SIGNATURES.sub(lambda match: f"{match.group(1)}={MASK}", text)


def secrets_of(value: Any) -> list[str]:
    """Every SecretStr in a settings tree; a URL also gives its token parts."""
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        return url_secrets(secret) if "://" in secret else [secret]
    if isinstance(value, BaseModel):
        return [s for name in type(value).model_fields for s in secrets_of(getattr(value, name))]
    if isinstance(value, dict):
        return [s for item in value.values() for s in secrets_of(item)]
    if isinstance(value, (list, tuple)):
        return [s for item in value for s in secrets_of(item)]
    return []


SCRUBBER = Scrubber()


def scrub(text: str) -> str:
    """`text` without any secret known to this process."""
    return SCRUBBER(text)
