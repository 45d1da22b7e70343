"""Checkpoint records in Tablestore (OTS): one row per key, compare-and-swap by a row condition.

Table: primary key `target` (STRING); attributes `version` (INTEGER), `body` (BINARY) and
`updated_at` (INTEGER, epoch ms, only for people looking at the table). A save is a PutRow whose
condition demands the row be absent (first save) or hold exactly the expected version; the
service refuses otherwise with OTSConditionCheckFail, which is the "someone else won" answer.

Importing `tablestore` costs a few hundred ms (it pulls numpy), so this module is imported only
when a tablestore:// checkpoint is configured.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# Keep the SDK's import-time notice ("native encoder not available") out of our output,
# unless the application configured that logger itself.
if logging.getLogger("tablestore").level == logging.NOTSET:
    logging.getLogger("tablestore").setLevel(logging.ERROR)

import tablestore  # noqa: E402
import urllib3  # noqa: E402

from ..errors import CheckpointError  # noqa: E402
from .backend import Backend, Stored  # noqa: E402

_PRIMARY_KEY = "target"
_CONDITION_FAILED = "OTSConditionCheckFail"
_HINTS = {
    "OTSObjectNotExist": "create the table with one primary key column `target` of type STRING",
    "OTSAuthFailed": "check the AccessKey ID/secret, the STS token and the instance name",
    "OTSNoPermissionAccess": "the AccessKey lacks ots:GetRow/PutRow/DeleteRow on this table",
}
_PK_HINT = "the table must have exactly one primary key column `target` of type STRING"
# New instances refuse their public endpoint: "Request denied by instance ACL policies".
_NETWORK_HINT = (
    "the instance's network settings refuse requests from this network (not a credentials "
    "problem): from Function Compute use the VPC endpoint with the function in a VPC bound to "
    "the instance, or allow public access in the instance's network management"
)
_VPC_UNREACHABLE_HINT = (
    "a VPC endpoint answers only inside a VPC bound to the instance: put the function in that "
    "VPC, or use ?endpoint=https://INSTANCE.REGION.ots.aliyuncs.com with public access allowed"
)


class TablestoreBackend(Backend):
    def __init__(
        self,
        instance: str,
        table: str,
        endpoint: str,
        credentials: Any,
        *,
        connect_timeout: float = 2.0,
        read_timeout: float = 10.0,
    ) -> None:
        self.instance = instance
        self.table = table
        self.endpoint = endpoint
        with self._errors("configure"):
            self._client = tablestore.OTSClient(
                endpoint,
                credentials.access_key_id,
                credentials.access_key_secret,
                instance,
                sts_token=credentials.security_token or None,
                socket_timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
                retry_policy=_retry_policy(),
                logger_name=_quiet_sdk_logger(),
            )
        _limit_connect_retries(self._client)

    def describe(self) -> str:
        return f"tablestore://{self.instance}/{self.table}"

    def load(self, key: str) -> Stored | None:
        with self._errors("GetRow", key):
            _, row, _ = self._client.get_row(
                self.table, [(_PRIMARY_KEY, key)], columns_to_get=["version", "body"], max_version=1
            )
        if row is None:
            return None
        columns = {name: value for name, value, *_ in row.attribute_columns}
        version, body = columns.get("version"), columns.get("body")
        if not isinstance(version, int) or body is None:
            raise CheckpointError(
                f"{self._where(key)}: the row has no integer `version` and `body` columns; "
                "it was not written by flink-alerts"
            )
        return Stored(version, body.encode() if isinstance(body, str) else bytes(body))

    def save(self, key: str, body: bytes, expected_version: int | None) -> bool:
        row = tablestore.Row(
            [(_PRIMARY_KEY, key)],
            [
                ("version", (expected_version or 0) + 1),
                ("body", bytearray(body)),  # bytearray is what the SDK sends as BINARY
                ("updated_at", int(time.time() * 1000)),
            ],
        )
        try:
            with self._errors("PutRow", key):
                self._client.put_row(self.table, row, _condition(expected_version))
        except _ConditionFailed:
            return False
        return True

    def delete(self, key: str) -> None:
        row = tablestore.Row([(_PRIMARY_KEY, key)])
        anyway = tablestore.Condition(tablestore.RowExistenceExpectation.IGNORE)
        with self._errors("DeleteRow", key):
            self._client.delete_row(self.table, row, anyway)

    def _where(self, key: str | None) -> str:
        return f"{self.describe()} key {key}" if key else self.describe()

    @contextmanager
    def _errors(self, action: str, key: str | None = None) -> Iterator[None]:
        try:
            yield
        except tablestore.OTSServiceError as exc:
            if exc.get_error_code() == _CONDITION_FAILED:
                raise _ConditionFailed() from None
            raise CheckpointError(
                f"{self._where(key)}: {action} failed: {_service_reason(exc)}"
            ) from None
        except tablestore.OTSClientError as exc:
            raise CheckpointError(
                f"{self._where(key)}: {action} failed: {exc.get_error_message()}"
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise CheckpointError(
                f"{self._where(key)}: {action} failed: {_network_reason(exc, self.endpoint)}"
            ) from None


class _ConditionFailed(Exception):
    """The row was not in the expected state: another writer saved first."""


def _condition(expected_version: int | None) -> Any:
    if expected_version is None:
        return tablestore.Condition(tablestore.RowExistenceExpectation.EXPECT_NOT_EXIST)
    # pass_if_missing defaults to True, which would let a row without `version` be overwritten.
    same_version = tablestore.SingleColumnCondition(
        "version", expected_version, tablestore.ComparatorType.EQUAL, pass_if_missing=False
    )
    return tablestore.Condition(tablestore.RowExistenceExpectation.EXPECT_EXIST, same_version)


def _retry_policy() -> Any:
    """The SDK's default policy, but at most 3 retries of at most 1 s (default: 20 of up to 3 s)."""
    policy = tablestore.DefaultRetryPolicy()
    policy.max_retry_times = 3
    policy.max_retry_delay = 1
    return policy


def _quiet_sdk_logger() -> str:
    """The SDK logs every failed request at ERROR, expected condition failures included, and at
    DEBUG it would log request headers (STS token). Our errors say it all; silence it."""
    name = "flink_alerts.tablestore_sdk"
    logging.getLogger(name).setLevel(logging.CRITICAL)
    return name


def _limit_connect_retries(client: Any) -> None:
    """urllib3 retries a refused or timed-out connect 3 times; once is enough to fail in seconds.
    Only connects are retried: a POST that may have reached the server never is."""
    pool = getattr(getattr(client, "connection", None), "pool", None)
    kwargs = getattr(pool, "connection_pool_kw", None)
    if isinstance(kwargs, dict):
        kwargs["retries"] = urllib3.Retry(total=1, connect=1, read=0, redirect=0, status=0)


def _service_reason(exc: Any) -> str:
    code = exc.get_error_code()
    text = f"{code}: {exc.get_error_message()} (HTTP {exc.get_http_status()}"
    if exc.get_request_id():
        text += f", requestId {exc.get_request_id()}"
    text += ")"
    hint = _HINTS.get(code)
    if code == "OTSParameterInvalid" and "PK" in exc.get_error_message():
        hint = _PK_HINT
    if code == "OTSAuthFailed" and "ACL" in exc.get_error_message():
        hint = _NETWORK_HINT
    return f"{text}; {hint}" if hint else text


def _network_reason(exc: BaseException, endpoint: str) -> str:
    cause = getattr(exc, "reason", None) or exc
    # NewConnectionError (refused, unresolvable) subclasses ConnectTimeoutError: test it first.
    if isinstance(cause, urllib3.exceptions.NewConnectionError):
        reason = f"cannot reach {endpoint} ({type(cause).__name__})"
    elif isinstance(cause, urllib3.exceptions.TimeoutError):
        reason = f"{endpoint} did not answer in time ({type(cause).__name__})"
    else:
        reason = f"cannot reach {endpoint} ({type(cause).__name__})"
    return f"{reason}; {_VPC_UNREACHABLE_HINT}" if ".vpc." in endpoint else reason
