"""The dispatcher against a local FC 3.0 API that checks path, headers, signature and payload."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from flink_alerts.credentials import Credentials
from flink_alerts.errors import ConfigError
from flink_alerts.fanout import FunctionInvoker, dispatch
from flink_alerts.handler import handle, parse_timer_event
from tests.servers.fc_server import FcServer

WORKER = "flink-alerts"


@pytest.fixture
def fc() -> Iterator[FcServer]:
    server = FcServer({WORKER}, security_token="sts-token-DO-NOT-PRINT").start()
    yield server
    server.stop()


def invoker(server: FcServer, credentials: Credentials | None = None) -> FunctionInvoker:
    return FunctionInvoker(server.endpoint, credentials or server.credentials, backoff_s=0.01)


def test_a_thousand_targets_one_async_call_per_shard_each_target_once(fc):
    targets = [f"ws{i % 13}/ns-{i}" for i in range(1000)]
    summary = dispatch(invoker(fc), WORKER, targets, shards=8)
    assert (summary.shards, summary.invoked, summary.errors) == (8, 8, [])
    assert [call.function for call in fc.invocations] == [WORKER] * 8
    assert {call.invocation_type for call in fc.invocations} == {"Async"}
    received = Counter(name for call in fc.invocations for name in parse_timer_event(call.body))
    assert set(received) == set(targets) and set(received.values()) == {1}
    assert all(call.event["triggerName"] == "fanout" for call in fc.invocations)
    assert len(set(summary.request_ids)) == 8


def test_unknown_worker_is_reported_per_shard_without_secrets(fc):
    summary = dispatch(invoker(fc), "no-such-function", ["a/b", "c/d"], shards=2)
    assert summary.invoked == 0 and len(summary.errors) == 2
    assert (
        "shard 1 (1 targets): invoking no-such-function failed: HTTP 404 FunctionNotFound"
        in (summary.errors[0])
    )
    assert all("DO-NOT-PRINT" not in error for error in summary.errors)


def test_wrong_secret_is_refused_and_not_retried(fc):
    wrong = Credentials(fc.access_key_id, "wrong-secret", fc.security_token)
    summary = dispatch(invoker(fc, wrong), WORKER, ["a/b"], shards=1)
    assert "HTTP 403 SignatureNotMatch" in summary.errors[0]
    assert fc.rejected == ["SignatureNotMatch"] and fc.invocations == []


def test_missing_sts_token_is_refused(fc):
    no_token = Credentials(fc.access_key_id, fc.access_key_secret)
    summary = dispatch(invoker(fc, no_token), WORKER, ["a/b"], shards=1)
    assert summary.invoked == 0 and fc.rejected == ["IncompleteSignature"]


def test_unavailable_service_is_retried(fc):
    fc.fail_next = 2
    summary = dispatch(invoker(fc), WORKER, ["a/b", "c/d"], shards=2)
    assert summary.invoked == 2 and summary.errors == []
    assert fc.rejected == ["ServiceUnavailable", "ServiceUnavailable"]


def test_fc_handler_dispatches_on_a_dispatch_payload(fc, tmp_path, monkeypatch):
    targets = [{"workspace": "ws", "namespace": f"ns{i}"} for i in range(5)]
    config = tmp_path / "config.yaml"
    fanout = {"shards": 2, "endpoint": fc.endpoint}
    checkpoint = "file:///mnt/nas/flink-alerts"  # what FC demands of a file checkpoint
    config.write_text(json.dumps({"targets": targets, "fanout": fanout, "checkpoint": checkpoint}))
    monkeypatch.setenv("FLINK_ALERTS_CONFIG", str(config))
    monkeypatch.setenv("FC_FUNCTION_NAME", WORKER)

    class Context:
        credentials = fc.credentials

    event = json.dumps({"triggerName": "dispatcher", "payload": '{"dispatch": true}'}).encode()
    summary = handle(event, Context(), time.monotonic(), default_config=Path(config))
    assert summary == {"dispatch": True, "shards": 2, "targets": 5, "invoked": 2, "errors": []}
    shards = [parse_timer_event(call.body) for call in fc.invocations]
    assert shards == [["ws/ns0", "ws/ns2", "ws/ns4"], ["ws/ns1", "ws/ns3"]]


def test_dispatch_payload_without_fanout_config_is_a_config_error(tmp_path, monkeypatch):
    config = tmp_path / "config.yaml"
    config.write_text("targets: [{workspace: ws, namespace: ns}]\n")
    monkeypatch.setenv("FLINK_ALERTS_CONFIG", str(config))
    event = b'{"payload": "{\\"dispatch\\": true}"}'
    with pytest.raises(ConfigError, match="^fanout: "):
        handle(event, None, time.monotonic(), default_config=config)
