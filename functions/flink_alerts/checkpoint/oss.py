"""Checkpoint records in OSS, with compare-and-swap built from create-only objects.

OSS has no conditional PutObject, only `x-oss-forbid-overwrite: true` (create if absent, else 409
FileAlreadyExists). So every version of a record is its own object
`{prefix}/{key}/{version:012d}.json` and the record is the highest version present.

save(expected): list (the newest must be `expected`), create version expected+1 create-only (a 409
means another writer got there first), list again (ours must still be the newest), then delete
all but the newest two versions. The second listing matters because of that cleanup: a writer
that stalls between its listing and its create could otherwise re-create a version deleted
meanwhile. The newest version is never deleted, so it only ever grows.
`x-oss-forbid-overwrite` has no effect on a bucket whose versioning is Enabled or Suspended (the
overwrite succeeds), so such a bucket is refused: GetBucketVersioning once per bucket and process
(a warm FC instance checks on its cold start only).
Residual limit: if another writer loads our brand-new version and saves on top of it before our
second listing, we report False although our version was used (never the reverse).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import oss2
import requests

from ..errors import CheckpointError
from .backend import Backend, Stored

log = logging.getLogger(__name__)

_VERSION_NAME = re.compile(r"^(\d{12})\.json$")
_FORBID_OVERWRITE = {"x-oss-forbid-overwrite": "true", "Content-Type": "application/json"}
_LOAD_ATTEMPTS = 5
_HINTS = {
    "NoSuchBucket": "the bucket does not exist in this endpoint's region",
    "AccessDenied": (
        "the AccessKey lacks oss:GetBucketVersioning on the bucket or "
        "oss:ListObjects/GetObject/PutObject/DeleteObject on the prefix"
    ),
    "InvalidAccessKeyId": "the AccessKey ID is unknown to OSS",
    "SignatureDoesNotMatch": "the AccessKey secret does not match its ID",
    "SecurityTokenExpired": "the STS token has expired",
    "InvalidSecurityToken": "the STS token is invalid",
}

_VERSIONING_HINT = (
    "x-oss-forbid-overwrite has no effect on such a bucket, so two runs could both commit; "
    "use a bucket (or a new one) whose versioning was never enabled"
)
# (endpoint, bucket) pairs found unversioned by this process.
_unversioned: set[tuple[str, str]] = set()
_unversioned_lock = threading.Lock()


class OssBackend(Backend):
    def __init__(
        self,
        bucket: str,
        prefix: str,
        endpoint: str,
        credentials: Any,
        *,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
    ) -> None:
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self.endpoint = endpoint
        with self._errors("configure"):
            self._bucket = oss2.Bucket(
                _auth(credentials),
                endpoint,
                bucket,
                connect_timeout=(connect_timeout, read_timeout),  # requests-style (connect, read)
            )

    def describe(self) -> str:
        return f"oss://{self.bucket_name}/{self.prefix}"

    def load(self, key: str) -> Stored | None:
        self._refuse_versioned_bucket(key)
        # The newest version can vanish between list and get only if two newer ones were saved
        # meanwhile (cleanup keeps the newest two): then simply look again.
        for _ in range(_LOAD_ATTEMPTS):
            versions = self._versions(key)
            if not versions:
                return None
            body = self._get(key, versions[-1])
            if body is not None:
                return Stored(versions[-1], body)
        raise CheckpointError(
            f"{self._where(key)}: the record kept changing while being read; try again"
        )

    def save(self, key: str, body: bytes, expected_version: int | None) -> bool:
        self._refuse_versioned_bucket(key)
        if self._newest(key) != expected_version:
            return False
        version = (expected_version or 0) + 1
        if not self._create(key, version, body):
            return False
        versions = self._versions(key)
        if versions[-1:] != [version]:  # overtaken between our listing and our create
            self._delete_quietly(key, [version])
            return False
        self._delete_quietly(key, [v for v in versions if v < version - 1])
        return True

    def delete(self, key: str) -> None:
        """Every version, the newest last: until then a reader still finds the record whole."""
        for version in self._versions(key):
            with self._errors("delete", key):
                self._bucket.delete_object(self._object_name(key, version))

    def _refuse_versioned_bucket(self, key: str) -> None:
        """Raise CheckpointError unless the bucket's versioning was never enabled."""
        bucket = (self.endpoint, self.bucket_name)
        with _unversioned_lock:  # one GetBucketVersioning per bucket, even from many threads
            if bucket in _unversioned:
                return
            with self._errors("GetBucketVersioning", key):
                status = self._bucket.get_bucket_versioning().status
            if status:
                raise CheckpointError(
                    f"{self._where(key)}: bucket versioning is {status}: {_VERSIONING_HINT}"
                )
            _unversioned.add(bucket)

    def _newest(self, key: str) -> int | None:
        versions = self._versions(key)
        return versions[-1] if versions else None

    def _folder(self, key: str) -> str:
        return f"{self.prefix}/{key}/" if self.prefix else f"{key}/"

    def _object_name(self, key: str, version: int) -> str:
        return f"{self._folder(key)}{version:012d}.json"

    def _versions(self, key: str) -> list[int]:
        """All versions present, ascending. Other objects in the folder are ignored."""
        folder = self._folder(key)
        versions: list[int] = []
        token = ""
        with self._errors("list", key):
            while True:
                page = self._bucket.list_objects_v2(
                    prefix=folder, continuation_token=token, max_keys=1000
                )
                for item in page.object_list:
                    match = _VERSION_NAME.match(item.key[len(folder) :])
                    if match:
                        versions.append(int(match.group(1)))
                if not page.is_truncated:
                    return sorted(versions)
                token = page.next_continuation_token

    def _get(self, key: str, version: int) -> bytes | None:
        with self._errors("get", key):
            try:
                return self._bucket.get_object(self._object_name(key, version)).read()
            except oss2.exceptions.NoSuchKey:
                return None

    def _create(self, key: str, version: int, body: bytes) -> bool:
        with self._errors("put", key):
            try:
                self._bucket.put_object(
                    self._object_name(key, version), body, headers=_FORBID_OVERWRITE
                )
            except oss2.exceptions.ServerError as exc:
                if exc.status == 409 and exc.code == "FileAlreadyExists":
                    return False
                raise
        return True

    def _delete_quietly(self, key: str, versions: list[int]) -> None:
        """Best effort: a leftover old version costs nothing but storage."""
        for version in versions:
            try:
                self._bucket.delete_object(self._object_name(key, version))
            except oss2.exceptions.OssError as exc:
                log.warning(
                    "%s: cannot delete old version %d: %s",
                    self.describe(),
                    version,
                    _reason(exc, self.endpoint),
                )

    def _where(self, key: str | None) -> str:
        return f"{self.describe()} key {key}" if key else self.describe()

    @contextmanager
    def _errors(self, action: str, key: str | None = None) -> Iterator[None]:
        try:
            yield
        except oss2.exceptions.OssError as exc:
            reason = _reason(exc, self.endpoint)
            raise CheckpointError(f"{self._where(key)}: OSS {action} failed: {reason}") from None
        except ValueError as exc:  # oss2 rejects a malformed endpoint or bucket name this way
            raise CheckpointError(f"{self._where(key)}: OSS {action} failed: {exc}") from None


def _auth(credentials: Any) -> Any:
    token = getattr(credentials, "security_token", None)
    if token:
        return oss2.StsAuth(credentials.access_key_id, credentials.access_key_secret, token)
    return oss2.Auth(credentials.access_key_id, credentials.access_key_secret)


def _reason(exc: Any, endpoint: str) -> str:
    """One secret-free line: the OSS error code and what it likely means, or the network failure."""
    if isinstance(exc, oss2.exceptions.RequestError):
        cause = exc.exception
        if isinstance(cause, requests.Timeout):
            return f"{endpoint} did not answer in time ({type(cause).__name__})"
        return f"cannot reach {endpoint} ({type(cause).__name__})"
    if isinstance(exc, oss2.exceptions.ClientError):
        return exc.body
    code = exc.code or "no error code"
    parts = [f"{code} (HTTP {exc.status}"]
    if exc.request_id:
        parts.append(f", requestId {exc.request_id}")
    parts.append(")")
    hint = _HINTS.get(code)
    return "".join(parts) + (f": {hint}" if hint else "")
