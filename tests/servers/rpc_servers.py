"""Local stand-ins for two RPC-style APIs: Realtime Compute's management API (foasconsole
2021-10-28: DescribeInstances, DescribeNamespaces) and STS (2015-04-01: AssumeRole).

Both reuse FlinkServer's gateway: ACS3 signature, clock skew, STS token, nonce reuse and the
fault queue (`inject`). One server serves every region (the `Region` parameter picks it).

    with FoasconsoleServer() as console:
        console.add_workspace("cn-hangzhou", "f-cn-1", "orders", ["prod", "dev"])
    with StsServer(caller=own_credentials) as sts:
        issued = sts.add_role("acs:ram::222:role/flink-alerts")
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from flink_alerts.credentials import Credentials
from flink_alerts.flink import signer
from tests.servers.flink_server import (
    FlinkServer,
    GatewayError,
    Received,
    _json,
    _now,
    _Reply,
    _request_id,
)


@dataclass
class _Workspace:
    name: str
    region: str
    owner: str  # AccessKey id of the account (or assumed role) that sees it
    namespaces: list[str] = field(default_factory=list)
    status: str = "RUNNING"


class _RpcServer(FlinkServer):
    """FlinkServer's gateway for `METHOD /?Param=…` calls named by the x-acs-action header."""

    actions: frozenset[str] = frozenset()

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> _Reply:
        parts = urlsplit(raw_path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        action = headers.get("x-acs-action", "Unknown")
        with self._lock:
            self._counts[action] += 1
            self.received.append(Received(action, method, parts.path, query, dict(headers)))
        try:
            self._authenticate(method, parts.path, query, headers, body, action)
            fault = self._next_fault(action)
            reply = self._apply_fault(fault, action) if fault else None
            if reply is not None:
                return reply
            auth = signer.parse_authorization(headers["authorization"]) or {}
            caller = self.known_credentials(auth["Credential"])
            return _Reply(200, _json(self.serve(action, query, caller)))
        except GatewayError as exc:
            return self._gateway_reply(exc)

    def _check_action(self, action: str, headers: dict[str, str]) -> None:
        if headers.get("x-acs-version") != self.version:
            raise GatewayError(400, "InvalidVersion", "Specified API version is not valid.")
        if action not in self.actions:
            raise GatewayError(404, "InvalidAction.NotFound", "Specified api is not found.")

    def serve(self, action: str, query: dict[str, str], caller: Credentials) -> dict[str, Any]:
        raise NotImplementedError


class FoasconsoleServer(_RpcServer):
    version = "2021-10-28"
    actions = frozenset({"DescribeInstances", "DescribeNamespaces"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._workspaces: dict[str, _Workspace] = {}

    def add_workspace(
        self,
        region: str,
        workspace_id: str,
        name: str,
        namespaces: list[str],
        owner: Credentials | None = None,
    ) -> None:
        owner_id = (owner or self.credentials).access_key_id
        with self._lock:
            self._workspaces[workspace_id] = _Workspace(name, region, owner_id, list(namespaces))

    def add_namespace(self, workspace_id: str, namespace: str) -> None:
        with self._lock:
            self._workspaces[workspace_id].namespaces.append(namespace)

    def remove_namespace(self, workspace_id: str, namespace: str) -> None:
        with self._lock:
            self._workspaces[workspace_id].namespaces.remove(namespace)

    def serve(self, action: str, query: dict[str, str], caller: Credentials) -> dict[str, Any]:
        region = _required(query, "Region")
        page_index, page_size = _paging(query)
        with self._lock:
            visible = {
                ws_id: ws
                for ws_id, ws in self._workspaces.items()
                if ws.region == region and ws.owner == caller.access_key_id
            }
            if action == "DescribeInstances":
                key, items = "Instances", [_instance(i, w) for i, w in sorted(visible.items())]
            else:
                workspace = visible.get(_required(query, "InstanceId"))
                if workspace is None:
                    raise GatewayError(404, "InstanceNotFound", "The instance does not exist.")
                key, items = "Namespaces", [_namespace(n) for n in workspace.namespaces]
        start = (page_index - 1) * page_size
        return {
            "RequestId": _request_id(),
            "Success": True,
            "PageIndex": page_index,
            "PageSize": page_size,
            "TotalCount": len(items),
            "TotalPage": math.ceil(len(items) / page_size),
            key: items[start : start + page_size],
        }


class StsServer(_RpcServer):
    """AssumeRole for `caller` (the function's credentials); each role issues fixed credentials,
    valid DurationSeconds from the call. Roles in `denied` answer NoPermission."""

    version = "2015-04-01"
    actions = frozenset({"AssumeRole"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.roles: dict[str, Credentials] = {}
        self.denied: set[str] = set()
        self.issued: list[str] = []  # roles assumed, one entry per AssumeRole
        self.refused: list[str] = []

    def add_role(self, role_arn: str) -> Credentials:
        digest = hashlib.sha256(role_arn.encode()).hexdigest()
        issued = Credentials(f"STS.{digest[:16]}", f"secret-{digest[16:32]}", f"token-{digest}")
        with self._lock:
            self.roles[role_arn] = issued
        return issued

    def serve(self, action: str, query: dict[str, str], caller: Credentials) -> dict[str, Any]:
        role_arn = _required(query, "RoleArn")
        _required(query, "RoleSessionName")
        duration = int(query.get("DurationSeconds", "3600"))
        if not 900 <= duration <= 43200:
            raise GatewayError(400, "InvalidParameter.DurationSeconds", "DurationSeconds.")
        with self._lock:
            issued = self.roles.get(role_arn)
            if issued is None:
                raise GatewayError(404, "EntityNotExist.Role", "The role does not exist.")
            if role_arn in self.denied:
                self.refused.append(role_arn)
                raise GatewayError(403, "NoPermission", "You are not authorized to do this.")
            self.issued.append(role_arn)
        expires = (_now() + timedelta(seconds=duration)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "RequestId": _request_id(),
            "AssumedRoleUser": {"Arn": role_arn, "AssumedRoleId": f"3{len(self.issued)}:x"},
            "Credentials": {
                "AccessKeyId": issued.access_key_id,
                "AccessKeySecret": issued.access_key_secret,
                "SecurityToken": issued.security_token,
                "Expiration": expires,
            },
        }


def _required(query: dict[str, str], name: str) -> str:
    if not query.get(name):
        raise GatewayError(400, f"MissingParameter.{name}", f"{name} is mandatory.")
    return query[name]


def _paging(query: dict[str, str]) -> tuple[int, int]:
    try:
        page_index, page_size = int(query.get("PageIndex", "1")), int(query.get("PageSize", "10"))
    except ValueError:
        raise GatewayError(400, "InvalidParameter", "PageIndex/PageSize.") from None
    if page_index < 1 or not 1 <= page_size <= 100:
        raise GatewayError(400, "InvalidParameter", "PageIndex/PageSize out of range.")
    return page_index, page_size


def _instance(workspace_id: str, workspace: _Workspace) -> dict[str, Any]:
    return {
        "InstanceId": workspace_id,
        "InstanceName": workspace.name,
        "Region": workspace.region,
        "ClusterStatus": workspace.status,
        "ChargeType": "POST",
    }


def _namespace(name: str) -> dict[str, Any]:
    return {"Namespace": name, "Status": "SUCCESS", "Ha": False, "GmtCreate": 1700000000000}
