"""Our V3 signer must produce exactly the Authorization the official SDK sends."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_util.models import RuntimeOptions
from alibabacloud_ververica20220718 import models as sdk_models
from alibabacloud_ververica20220718.client import Client

from flink_alerts.credentials import Credentials
from flink_alerts.flink import signer

SECRET = "sdk-test-secret/+=="
TOKEN = "sts-token-ABC/+=xyz"
OUR_HEADERS = {
    "host",
    "x-acs-action",
    "x-acs-version",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-content-sha256",
    "x-acs-accesskey-id",
    "x-acs-security-token",
}

NAMESPACES = [
    "default-namespace",
    "my ns",
    "命名空间-ü",
    "team/a",
    "a+b",
    "x~y",
    "s*t",
    "50%off",
    "all: /+~*% ü",
]
DEPLOYMENT_IDS = [None, "7b9a-dep", "dep with space", "dep/+~*%", "部署-é", "a=b&c"]


class _Capture(BaseHTTPRequestHandler):
    captured: list[dict[str, Any]]

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self.captured.append(
            {
                "method": "GET",
                "raw_path": self.path,
                "headers": {name.lower(): value for name, value in self.headers.items()},
            }
        )
        body = json.dumps({"requestId": "r", "success": True, "httpCode": 200, "data": []})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def capture() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    captured: list[dict[str, Any]] = []
    handler = type("Handler", (_Capture,), {"captured": captured})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}", captured
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def _sdk_client(endpoint: str, creds: Credentials) -> Client:
    config = open_api_models.Config(
        access_key_id=creds.access_key_id,
        access_key_secret=creds.access_key_secret,
        security_token=creds.security_token,
        endpoint=endpoint,
        protocol="http",
    )
    return Client(config)


def _sdk_get_events(client: Client, namespace: str, deployment_id: str | None) -> None:
    request = sdk_models.GetEventsRequest(page_index=3, page_size=100, deployment_id=deployment_id)
    headers = sdk_models.GetEventsHeaders(workspace="ws-1a2b3c")
    client.get_events_with_options(namespace, request, headers, RuntimeOptions())


def _ours(
    captured: dict[str, Any], path: str, query: dict[str, str], creds: Credentials, action: str
) -> dict[str, str]:
    sent = captured["headers"]
    auth = signer.parse_authorization(sent["authorization"])
    assert auth is not None
    extra = {
        name: sent[name] for name in auth["SignedHeaders"].split(";") if name not in OUR_HEADERS
    }
    return signer.sign_request(
        "GET",
        sent["host"],
        path,
        query,
        extra,
        b"",
        creds,
        action=action,
        version="2022-07-18",
        date=sent["x-acs-date"],
        nonce=sent["x-acs-signature-nonce"],
    )


def _assert_same(captured: dict[str, Any], ours: dict[str, str], path: str, query: dict) -> None:
    raw = urlsplit(captured["raw_path"])
    assert raw.path == path, "our path encoding differs from the SDK's"
    assert dict(parse_qsl(raw.query, keep_blank_values=True)) == query
    assert ours["Authorization"] == captured["headers"]["authorization"]
    for name, value in ours.items():
        if name != "Authorization":
            assert captured["headers"][name] == value, name


@pytest.mark.parametrize("token", [None, TOKEN], ids=["ak", "sts"])
@pytest.mark.parametrize("namespace", NAMESPACES)
def test_get_events_signature_matches_sdk(capture, namespace: str, token: str | None) -> None:
    endpoint, captured = capture
    creds = Credentials("LTAI-test-id", SECRET, token)
    for deployment_id in DEPLOYMENT_IDS:
        captured.clear()
        _sdk_get_events(_sdk_client(endpoint, creds), namespace, deployment_id)
        assert len(captured) == 1
        path = f"/api/v2/namespaces/{signer.encode_segment(namespace)}/events"
        query = {"pageIndex": "3", "pageSize": "100"}
        if deployment_id is not None:
            query["deploymentId"] = deployment_id
        ours = _ours(captured[0], path, query, creds, "GetEvents")
        _assert_same(captured[0], ours, path, query)
        assert ("x-acs-security-token" in ours) == (token is not None)


def test_list_deployments_signature_matches_sdk(capture) -> None:
    endpoint, captured = capture
    captured.clear()
    creds = Credentials("LTAI-test-id", SECRET, TOKEN)
    request = sdk_models.ListDeploymentsRequest(page_index=2, page_size=100, name="a b+c")
    headers = sdk_models.ListDeploymentsHeaders(workspace="ws-1a2b3c")
    _sdk_client(endpoint, creds).list_deployments_with_options(
        "team/ns ü", request, headers, RuntimeOptions()
    )
    path = f"/api/v2/namespaces/{signer.encode_segment('team/ns ü')}/deployments"
    query = {"pageIndex": "2", "pageSize": "100", "name": "a b+c"}
    ours = _ours(captured[0], path, query, creds, "ListDeployments")
    _assert_same(captured[0], ours, path, query)


def test_empty_body_hash_and_date_format() -> None:
    assert signer.EMPTY_SHA256.startswith("e3b0c442") and signer.EMPTY_SHA256.endswith("b855")
    from datetime import datetime, timezone

    when = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
    assert signer.acs_date(when) == "2024-05-06T07:08:09Z"


def test_signature_changes_with_secret_and_every_signed_part() -> None:
    creds = Credentials("id", "secret")
    base = dict(action="GetEvents", version="2022-07-18", date="2024-01-01T00:00:00Z", nonce="n")
    args = ("GET", "h", "/p", {"a": "1"}, {"workspace": "w"}, b"", creds)
    reference = signer.sign_request(*args, **base)["Authorization"]
    variants = [
        ("GET", "h", "/p", {"a": "2"}, {"workspace": "w"}, b"", creds),
        ("GET", "h", "/q", {"a": "1"}, {"workspace": "w"}, b"", creds),
        ("GET", "h", "/p", {"a": "1"}, {"workspace": "x"}, b"", creds),
        ("GET", "h", "/p", {"a": "1"}, {"workspace": "w"}, b"x", creds),
        ("GET", "h", "/p", {"a": "1"}, {"workspace": "w"}, b"", Credentials("id", "other")),
    ]
    for variant in variants:
        assert signer.sign_request(*variant, **base)["Authorization"] != reference
    assert "secret" not in repr(creds) and "secret" not in str(creds)
