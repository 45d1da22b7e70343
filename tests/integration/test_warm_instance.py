"""A warm FC instance reuses settings and wiring between invocations; a quiet run stays light."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from flink_alerts.events import Target
from flink_alerts.handler import WarmInstance, handle
from tests.servers.flink_server import FlinkServer
from tests.servers.receiver import ReceiverServer

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
# Import the FC entry point, run one invocation, say which of these modules it loaded.
WATCHED = ("jinja2", "pydantic_settings", "flink_alerts.channels.webhook")
PROBE = (
    "import sys; sys.path.insert(0, sys.argv[1]); import index; index.handler(b'{}', None); "
    f"print(sorted(m for m in {WATCHED} if m in sys.modules))"
)


def write_config(path: Path, server: FlinkServer, **extra: Any) -> Path:
    config = {
        "endpoint": server.url,
        "targets": [{"workspace": server.workspace, "namespace": server.namespace}],
        "checkpoint": f"file://{path.parent / (path.stem + '-checkpoints')}",
        **extra,
    }
    path.write_text(json.dumps(config))
    return path


def invoke_fresh(config: Path, server: FlinkServer, **environ: str) -> list[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FLINK_ALERTS_")},
        **environ,
        "FLINK_ALERTS_CONFIG": str(config),
        "FLINK_ALERTS_LOG_LEVEL": "ERROR",
        "ALIBABA_CLOUD_ACCESS_KEY_ID": server.access_key_id,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": server.access_key_secret,
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(FUNCTIONS)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1].replace("'", '"'))


def test_a_quiet_run_imports_neither_jinja2_nor_pydantic_settings(tmp_path, flink_server):
    flink_server.generate(30)
    with ReceiverServer() as receiver:
        receivers = [{"name": "hook", "type": "webhook", "url": receiver.url}]
        quiet = write_config(tmp_path / "quiet.yaml", flink_server, receivers=receivers)
        assert invoke_fresh(quiet, flink_server) == ["flink_alerts.channels.webhook"]
        # The same probe sees jinja2 once something is rendered.
        alerting = write_config(
            tmp_path / "alerting.yaml", flink_server, receivers=receivers, start_from="earliest"
        )
        assert invoke_fresh(alerting, flink_server) == ["flink_alerts.channels.webhook", "jinja2"]
        assert receiver.bodies
        # and pydantic-settings when a variable overrides a key.
        loaded = invoke_fresh(quiet, flink_server, FLINK_ALERTS_PAGE_SIZE="50")
        assert loaded == ["flink_alerts.channels.webhook", "pydantic_settings"]


@pytest.fixture
def credentials_env(monkeypatch, flink_server):
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", flink_server.access_key_id)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", flink_server.access_key_secret)


def test_a_second_invocation_reuses_settings_and_wiring(tmp_path, flink_server, credentials_env):
    flink_server.generate(5)
    config = write_config(tmp_path / "config.yaml", flink_server)
    warm = WarmInstance()
    settings, wiring = warm.load(config)
    store = wiring.store(lambda: None)
    assert warm.load(config) == (settings, wiring)
    assert warm.load(config)[0] is settings and warm.load(config)[1] is wiring
    again = wiring.store(lambda: None)
    assert again.backend is store.backend and again.owner != store.owner
    source = wiring.source(lambda: flink_server.credentials, 0.0)
    target = Target(flink_server.workspace, flink_server.namespace)
    assert source.client_for(target)._session is wiring.session


def test_editing_the_config_reloads_it(tmp_path, flink_server, credentials_env):
    config = write_config(tmp_path / "config.yaml", flink_server, timezone="UTC")
    warm = WarmInstance()
    settings, wiring = warm.load(config)
    write_config(config, flink_server, timezone="Asia/Tokyo")
    reloaded, rewired = warm.load(config)
    assert reloaded.timezone == "Asia/Tokyo" and rewired is not wiring
    # Same size and content, newer modification time: read again.
    stat = config.stat()
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert warm.load(config)[0] is not reloaded


def test_the_handler_keeps_its_wiring_between_invocations(
    tmp_path, monkeypatch, flink_server, credentials_env
):
    from flink_alerts import handler

    flink_server.generate(5)
    config = write_config(tmp_path / "config.yaml", flink_server)
    monkeypatch.setenv("FLINK_ALERTS_CONFIG", str(config))
    monkeypatch.setattr(handler, "WARM", WarmInstance())
    first = handle(b"{}", None, time.monotonic(), default_config=config)
    wiring = handler.WARM.load(config)[1]
    second = handle(b"{}", None, time.monotonic(), default_config=config)
    assert first["errors"] == second["errors"] == []
    assert handler.WARM.load(config)[1] is wiring
    assert flink_server.request_count("GetEvents") == first["api_calls"] + second["api_calls"]


def test_a_cloud_store_is_reopened_when_the_credentials_change(tmp_path, flink_server):
    from flink_alerts.credentials import Credentials

    config = write_config(
        tmp_path / "config.yaml",
        flink_server,
        checkpoint="oss://bucket/prefix?endpoint=http://127.0.0.1:9",
    )
    wiring = WarmInstance().load(config)[1]
    first = Credentials("id", "secret", "sts-token-1")
    renewed = Credentials("id", "secret", "sts-token-2")
    store = wiring.store(lambda: first)
    assert wiring.store(lambda: first).backend is store.backend
    assert wiring.store(lambda: renewed).backend is not store.backend
