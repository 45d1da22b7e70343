"""Alibaba Cloud API signature V3 (ACS3-HMAC-SHA256), as the official SDKs compute it.

Pure functions, so the signing can be compared byte-for-byte with the SDK and reused by the
test server to verify requests.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from urllib.parse import quote

from ..credentials import Credentials

ALGORITHM = "ACS3-HMAC-SHA256"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def encode_segment(text: str) -> str:
    """Percent-encode one path segment (a namespace may contain `/`): only unreserved chars stay."""
    return quote(text, safe="~")


def encode_value(text: str) -> str:
    """Percent-encode a query key or value for the canonical query string."""
    return quote(text, safe="~")


def canonical_query(query: Mapping[str, str]) -> str:
    pairs = sorted((encode_value(key), encode_value(str(value))) for key, value in query.items())
    return "&".join(f"{key}={value}" for key, value in pairs)


def canonical_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    """(`name:value\\n` lines, `;`-joined names) of the headers, lower-cased and trimmed."""
    lowered = {name.lower(): str(value).strip() for name, value in headers.items()}
    names = sorted(lowered)
    lines = "".join(f"{name}:{lowered[name]}\n" for name in names)
    return lines, ";".join(names)


def canonical_request(
    method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], payload_hash: str
) -> str:
    """`path` is already percent-encoded, exactly as it is sent on the wire."""
    header_lines, signed = canonical_headers(headers)
    return "\n".join(
        [method.upper(), path or "/", canonical_query(query), header_lines, signed, payload_hash]
    )


def signature(secret: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    string_to_sign = f"{ALGORITHM}\n{digest}"
    mac = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256)
    return mac.hexdigest()


def acs_date(now: datetime | None = None) -> str:
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime(DATE_FORMAT)


def new_nonce() -> str:
    return uuid.uuid4().hex


def sign_request(
    method: str,
    host: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    body: bytes,
    credentials: Credentials,
    *,
    action: str,
    version: str,
    date: str,
    nonce: str,
) -> dict[str, str]:
    """Every header to send, all of them signed, plus `Authorization`.

    `headers` are extra headers to sign and send (e.g. `workspace`); `path` is percent-encoded.
    """
    payload_hash = hashlib.sha256(body).hexdigest()
    signed: dict[str, str] = {name.lower(): str(value) for name, value in headers.items()}
    signed.update(
        {
            "host": host,
            "x-acs-action": action,
            "x-acs-version": version,
            "x-acs-date": date,
            "x-acs-signature-nonce": nonce,
            "x-acs-content-sha256": payload_hash,
        }
    )
    if credentials.security_token:
        # The SDK sends (and signs) the key id next to the STS token.
        signed["x-acs-accesskey-id"] = credentials.access_key_id
        signed["x-acs-security-token"] = credentials.security_token
    canonical = canonical_request(method, path, query, signed, payload_hash)
    _, signed_names = canonical_headers(signed)
    sig = signature(credentials.access_key_secret, canonical)
    signed["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key_id},"
        f"SignedHeaders={signed_names},Signature={sig}"
    )
    return signed


def parse_authorization(value: str) -> dict[str, str] | None:
    """`ACS3-HMAC-SHA256 Credential=…,SignedHeaders=…,Signature=…` -> its three fields, or None."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        return None
    fields = dict(part.strip().partition("=")[::2] for part in rest.split(","))
    if not all(fields.get(key) for key in ("Credential", "SignedHeaders", "Signature")):
        return None
    return fields
