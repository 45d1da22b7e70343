"""The two calls of the Realtime Compute management API (`foasconsole`, 2021-10-28) discovery needs.

Confirmed against alibabacloud-foasconsole20211028 2.3.2 (models and `*_with_options`):
- Both are RPC style, `GET /` with query parameters, signed with ACS3-HMAC-SHA256 (see rpc.py);
  default endpoint `foasconsole.{region}.aliyuncs.com`.
- DescribeInstances: `Region` (required), `PageIndex`, `PageSize` (max 100, default 10); optional
  filters not used here. Answer: `RequestId, Success, PageIndex, PageSize, TotalCount, TotalPage,
  Instances[]`, each with `InstanceId` (the workspace id GetEvents takes), `InstanceName` (the
  workspace name), `Region`, `ClusterStatus` (CREATING, RUNNING, DISABLE, DELETING, DELETED), ...
- DescribeNamespaces: `Region` and `InstanceId` (both required), `PageIndex`, `PageSize`. Answer:
  `RequestId, Success, PageIndex, PageSize, TotalCount, TotalPage, Namespaces[]`, each with
  `Namespace` (the name), `Status` (CREATING, DELETING, MODIFYING, SUCCESS, FAILED), `GmtCreate`, ...
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import MalformedResponseError
from .rpc import RpcClient

VERSION = "2021-10-28"
PAGE_SIZE = 100
_MAX_PAGES = 50
_GONE_WORKSPACES = {"DELETING", "DELETED"}
_GONE_NAMESPACES = {"DELETING"}


@dataclass(frozen=True)
class Workspace:
    workspace_id: str
    name: str
    region: str


class Foasconsole:
    def __init__(self, rpc: RpcClient) -> None:
        self.rpc = rpc

    def workspaces(self, region: str) -> list[Workspace]:
        """The region's workspaces, except those being deleted (one call per 100 workspaces)."""
        found = []
        for item in self._pages("DescribeInstances", "Instances", {"Region": region}):
            workspace_id = item.get("InstanceId")
            if not workspace_id:
                raise MalformedResponseError("DescribeInstances: an instance has no InstanceId")
            if item.get("ClusterStatus") not in _GONE_WORKSPACES:
                name = str(item.get("InstanceName") or workspace_id)
                found.append(Workspace(str(workspace_id), name, str(item.get("Region") or region)))
        return found

    def namespaces(self, workspace: Workspace) -> list[str]:
        """The workspace's namespace names, except those being deleted."""
        params = {"Region": workspace.region, "InstanceId": workspace.workspace_id}
        names = []
        for item in self._pages("DescribeNamespaces", "Namespaces", params):
            if not item.get("Namespace"):
                raise MalformedResponseError("DescribeNamespaces: a namespace has no name")
            if item.get("Status") not in _GONE_NAMESPACES:
                names.append(str(item["Namespace"]))
        return names

    def _pages(self, action: str, key: str, params: dict[str, str]) -> Iterator[dict]:
        for index in range(1, _MAX_PAGES + 1):
            body = self.rpc.call(action, {**params, "PageIndex": index, "PageSize": PAGE_SIZE})
            items = body.get(key) or []
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise MalformedResponseError(f"{action}: `{key}` is not a list of objects")
            yield from items
            if len(items) < PAGE_SIZE or index * PAGE_SIZE >= _count(body, action):
                return


def _count(body: dict, action: str) -> int:
    value = body.get("TotalCount")
    if value is None:
        return 0  # a short page already ends the listing; a full one without a count ends here
    if isinstance(value, bool) or not str(value).isdigit():
        raise MalformedResponseError(f"{action}: TotalCount is {value!r}, expected a count")
    return int(value)
