"""STS AssumeRole (2015-04-01): credentials of another account, cached until shortly before expiry.

Confirmed against alibabacloud-sts20150401 1.2.0: RPC style, `POST /` with the parameters in the
query string (`RoleArn`, `RoleSessionName`, `DurationSeconds`; optional `Policy`, `ExternalId`,
`SourceIdentity`) and an empty body, signed with ACS3-HMAC-SHA256 like every call here. Answer:
`RequestId, AssumedRoleUser{Arn, AssumedRoleId}, Credentials{AccessKeyId, AccessKeySecret,
SecurityToken, Expiration}`, `Expiration` in UTC like `2015-04-09T11:52:19Z`. The default endpoint
is `sts.aliyuncs.com` (regional `sts.{region}.aliyuncs.com` and `sts-vpc.…` also exist).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from ..credentials import Credentials
from ..errors import MalformedResponseError
from .rpc import CallCount, RpcClient

VERSION = "2015-04-01"
DURATION_S = 3600
# A run must not start with credentials that expire during it (FC runs are minutes long).
RENEW_BEFORE = timedelta(minutes=15)


@dataclass(frozen=True)
class Session:
    credentials: Credentials
    expires_at: datetime


def assume_role(rpc: RpcClient, role_arn: str, session_name: str) -> Session:
    body = rpc.call(
        "AssumeRole",
        {"RoleArn": role_arn, "RoleSessionName": session_name, "DurationSeconds": DURATION_S},
        method="POST",
    )
    found = body.get("Credentials")
    if not isinstance(found, dict):
        raise MalformedResponseError("AssumeRole: the answer has no Credentials")
    try:
        expires_at = datetime.strptime(found["Expiration"], "%Y-%m-%dT%H:%M:%SZ")
        credentials = Credentials(
            str(found["AccessKeyId"]), str(found["AccessKeySecret"]), str(found["SecurityToken"])
        )
    except (KeyError, TypeError, ValueError):
        raise MalformedResponseError(
            "AssumeRole: Credentials lack a key or a valid Expiration"
        ) from None
    return Session(credentials, expires_at.replace(tzinfo=timezone.utc))


class RoleSessions:
    """Assumed-role credentials per (caller, role), reused until RENEW_BEFORE their expiry.

    One instance lives at module level, so a warm FC instance reuses them across timer runs.
    """

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.clock = clock
        self._sessions: dict[tuple[str, str, str], Session] = {}
        self._lock = threading.Lock()
        self.assumed = 0  # AssumeRole calls made (for tests and bench)

    def credentials(
        self,
        caller: Credentials,
        role_arn: str,
        session_name: str,
        endpoint: str,
        timeout_s: float,
        calls: CallCount | None = None,
    ) -> Credentials:
        """`calls` counts the AssumeRole requests made for this caller's run."""
        key = (caller.access_key_id, role_arn, endpoint)
        with self._lock:  # one AssumeRole per role at a time, not one per waiting target
            session = self._sessions.get(key)
            if session is None or session.expires_at - RENEW_BEFORE <= self.clock():
                rpc = RpcClient(
                    endpoint,
                    caller,
                    version=VERSION,
                    ram_code="sts",
                    timeout_s=timeout_s,
                    calls=calls,
                )
                session = assume_role(rpc, role_arn, session_name)
                self.assumed += 1
                self._sessions[key] = session
            return session.credentials


SESSIONS = RoleSessions()
