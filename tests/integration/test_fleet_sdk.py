"""Our foasconsole and STS requests must be the official SDKs' requests, byte for byte.

The SDKs call the local servers (which verify their signatures); then our RpcClient prepares
the same call with the SDK's date, nonce and extra headers and must produce the same query and
the same signed headers, Authorization included.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from alibabacloud_foasconsole20211028 import models as foas_models
from alibabacloud_foasconsole20211028.client import Client as FoasClient
from alibabacloud_sts20150401 import models as sts_models
from alibabacloud_sts20150401.client import Client as StsClient
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_util.models import RuntimeOptions

from flink_alerts.credentials import Credentials
from flink_alerts.fleet import foasconsole, sts
from flink_alerts.fleet.rpc import RpcClient
from flink_alerts.flink import signer
from tests.servers.rpc_servers import FoasconsoleServer, StsServer

ROLE = "acs:ram::1234567890:role/flink alerts+ü"
# Headers our signer adds itself; every other signed header of the SDK is passed as extra.
OWN = {"host", "x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce"}
OWN |= {"x-acs-content-sha256", "x-acs-accesskey-id", "x-acs-security-token"}


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture(params=[None, "sts-token/+="], ids=["ak", "sts"])
def console(request) -> Iterator[FoasconsoleServer]:
    with FoasconsoleServer(security_token=request.param) as server:
        server.add_workspace("cn-hangzhou", "f-cn-1", "orders ü", ["prod", "dev"])
        yield server


def _config(server: Any) -> open_api_models.Config:
    creds = server.credentials
    return open_api_models.Config(
        access_key_id=creds.access_key_id,
        access_key_secret=creds.access_key_secret,
        security_token=creds.security_token,
        endpoint=server.url.removeprefix("http://"),
        protocol="http",
    )


def _assert_same_as_ours(server: Any, version: str, ram_code: str) -> None:
    sent = server.received[-1]
    auth = signer.parse_authorization(sent.headers["authorization"])
    assert auth is not None
    names = auth["SignedHeaders"].split(";")
    extra = {name: sent.headers[name] for name in names if name not in OWN}
    rpc = RpcClient(server.url, server.credentials, version=version, ram_code=ram_code)
    url, ours = rpc.prepare(
        sent.method,
        sent.action,
        sent.query,
        date=sent.headers["x-acs-date"],
        nonce=sent.headers["x-acs-signature-nonce"],
        extra=extra,
    )
    assert sent.path == "/" and url.startswith(f"{server.url}/?")
    assert ours["Authorization"] == sent.headers["authorization"]
    assert {name: ours[name] for name in names} == {name: sent.headers[name] for name in names}
    assert sent.headers["x-acs-content-sha256"] == signer.EMPTY_SHA256  # empty body


def test_describe_instances_matches_sdk(console: FoasconsoleServer) -> None:
    request = foas_models.DescribeInstancesRequest(
        region="cn-hangzhou", page_index=1, page_size=100
    )
    answer = FoasClient(_config(console)).describe_instances_with_options(request, RuntimeOptions())
    assert [i.instance_id for i in answer.body.instances] == ["f-cn-1"]
    assert answer.body.instances[0].instance_name == "orders ü"
    assert console.received[-1].query == {
        "Region": "cn-hangzhou",
        "PageIndex": "1",
        "PageSize": "100",
    }
    _assert_same_as_ours(console, foasconsole.VERSION, "stream")


def test_describe_namespaces_matches_sdk(console: FoasconsoleServer) -> None:
    request = foas_models.DescribeNamespacesRequest(
        region="cn-hangzhou", instance_id="f-cn-1", page_index=2, page_size=1
    )
    answer = FoasClient(_config(console)).describe_namespaces_with_options(
        request, RuntimeOptions()
    )
    assert [n.namespace for n in answer.body.namespaces] == ["dev"]
    assert answer.body.total_count == 2
    _assert_same_as_ours(console, foasconsole.VERSION, "stream")


def test_our_discovery_asks_what_the_sdk_asks(console: FoasconsoleServer) -> None:
    client = foasconsole.Foasconsole(
        RpcClient(console.url, console.credentials, version=foasconsole.VERSION, ram_code="stream")
    )
    (workspace,) = client.workspaces("cn-hangzhou")
    assert client.namespaces(workspace) == ["prod", "dev"]
    instances, namespaces = console.received[-2:]
    assert instances.method == namespaces.method == "GET"
    assert instances.query == {"Region": "cn-hangzhou", "PageIndex": "1", "PageSize": "100"}
    assert namespaces.query == {**instances.query, "InstanceId": "f-cn-1"}


@pytest.mark.parametrize("token", [None, "caller-token/+="], ids=["ak", "sts"])
def test_assume_role_matches_sdk(token: str | None) -> None:
    with StsServer(security_token=token) as server:
        issued = server.add_role(ROLE)
        request = sts_models.AssumeRoleRequest(
            role_arn=ROLE, role_session_name="flink-alerts", duration_seconds=3600
        )
        answer = StsClient(_config(server)).assume_role_with_options(request, RuntimeOptions())
        assert answer.body.credentials.security_token == issued.security_token
        assert server.received[-1].method == "POST"
        _assert_same_as_ours(server, sts.VERSION, "sts")
        rpc = RpcClient(server.url, server.credentials, version=sts.VERSION, ram_code="sts")
        session = sts.assume_role(rpc, ROLE, "flink-alerts")
        assert session.credentials == issued
        assert server.received[-1].query == server.received[-2].query


def test_a_wrong_secret_is_refused_by_the_local_servers() -> None:
    with StsServer() as server:
        server.add_role(ROLE)
        wrong = Credentials(server.access_key_id, "not-the-secret")
        rpc = RpcClient(server.url, wrong, version=sts.VERSION, ram_code="sts")
        with pytest.raises(Exception, match="SignatureDoesNotMatch"):
            sts.assume_role(rpc, ROLE, "flink-alerts")
