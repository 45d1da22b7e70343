"""The bridge watching itself: degraded/recovered notices and the heartbeat, end to end on
local servers (Flink API, webhook receivers, OSS, an HTTP heartbeat endpoint)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flink_alerts.checkpoint.file import FileBackend
from tests.integration.test_run import run, write_config
from tests.servers.flink_server import FlinkServer
from tests.servers.oss_server import OssTestServer
from tests.servers.receiver import ReceiverServer


@pytest.fixture
def hooks(
    monkeypatch, flink_server: FlinkServer
) -> Iterator[tuple[ReceiverServer, ReceiverServer]]:
    """(the team's receiver, the bridge operators' receiver), and the Flink API's AccessKey."""
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", flink_server.credentials.access_key_id)
    monkeypatch.setenv(
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET", flink_server.credentials.access_key_secret
    )
    with ReceiverServer() as team, ReceiverServer() as operators:
        yield team, operators


def configure(tmp_path: Path, flink: FlinkServer, team, operators, **extra: Any) -> Path:
    path = write_config(tmp_path, flink, [team, operators], **extra)
    config = json.loads(path.read_text())
    config["routes"] = [{"receivers": ["hook0"]}]  # Flink alerts to the team only
    config.setdefault("self_alerts", {"receiver": "hook1"})
    path.write_text(json.dumps(config))
    return path


def notices(operators: ReceiverServer) -> list[tuple[str, str]]:
    return [(body["status"], body["alerts"][0]["eventName"]) for body in operators.bodies]


def test_three_failed_runs_degrade_once_and_a_good_run_recovers(
    tmp_path, capsys, flink_server, hooks
):
    team, operators = hooks
    flink_server.generate(3)
    config = configure(tmp_path, flink_server, team, operators)
    flink_server.denied_actions = {"GetEvents"}
    for _ in range(4):
        code, summary = run(capsys, config)
        assert code == 1 and summary["errors"]
    assert notices(operators) == [("firing", "BRIDGE_DEGRADED")]
    message = operators.bodies[0]["alerts"][0]["message"]
    assert f"{flink_server.workspace}/{flink_server.namespace}: 3 failed runs in a row" in message
    flink_server.denied_actions = set()
    for _ in range(2):
        assert run(capsys, config)[0] == 0
    assert notices(operators) == [("firing", "BRIDGE_DEGRADED"), ("resolved", "BRIDGE_RECOVERED")]
    stored = FileBackend(str(tmp_path / "checkpoints")).load("bridge-health")
    assert stored is not None and json.loads(stored.body)["degraded"] is False


def test_a_receiver_parked_too_long_is_reported_around_it(tmp_path, capsys, flink_server, hooks):
    team, operators = hooks
    flink_server.generate(7)
    self_alerts = {"receiver": "hook1", "parked_longer_than": "0s"}
    config = configure(tmp_path, flink_server, team, operators, self_alerts=self_alerts)
    team.status = 503
    code, summary = run(capsys, config)
    assert code == 0 and summary["pending"] == 1
    assert notices(operators) == [("firing", "BRIDGE_DEGRADED")]
    assert "receiver hook0: an alert has waited" in operators.bodies[0]["alerts"][0]["message"]
    team.status = 200
    code, summary = run(capsys, config)
    assert summary["sent"] == 1 and summary["pending"] == 0
    assert notices(operators)[-1] == ("resolved", "BRIDGE_RECOVERED")


def test_an_unsent_notice_is_sent_by_a_later_run(tmp_path, capsys, flink_server, hooks):
    team, operators = hooks
    config = configure(
        tmp_path, flink_server, team, operators, self_alerts={"receiver": "hook1", "failed_runs": 1}
    )
    flink_server.denied_actions = {"GetEvents"}
    operators.status = 503
    run(capsys, config)
    assert operators.attempts == 1 and operators.bodies == []
    operators.status = 200
    run(capsys, config)
    assert notices(operators) == [("firing", "BRIDGE_DEGRADED")]


def test_an_unreachable_checkpoint_store_is_still_reported(tmp_path, capsys, flink_server, hooks):
    team, operators = hooks
    with OssTestServer() as oss:
        bucket = oss.create_bucket()
        checkpoint = f"oss://{bucket}/fa?endpoint={oss.endpoint}"
    # the OSS server is stopped now: every target fails on its checkpoint, and so does the record
    config = configure(tmp_path, flink_server, team, operators, checkpoint=checkpoint)
    for _ in range(3):
        code, summary = run(capsys, config)
        assert code == 1 and "cannot reach" in summary["errors"][0]
    assert notices(operators) == [("firing", "BRIDGE_DEGRADED")]
    assert "OSS" in operators.bodies[0]["alerts"][0]["message"]


def test_heartbeat_after_each_good_run_only_and_its_url_never_logged(
    tmp_path, capsys, caplog, flink_server, hooks, httpserver
):
    team, operators = hooks
    secret_path = "/ping/7f3c-secret-check-uuid"
    httpserver.expect_request(secret_path, method="POST").respond_with_data("OK")
    url = httpserver.url_for(secret_path)
    config = configure(
        tmp_path, flink_server, team, operators, heartbeat_url=url, heartbeat_method="POST"
    )
    for _ in range(2):
        assert run(capsys, config)[0] == 0
    assert [r.path for r, _ in httpserver.log] == [secret_path] * 2
    flink_server.denied_actions = {"GetEvents"}
    assert run(capsys, config)[0] == 1
    assert len(httpserver.log) == 2  # a failed run does not beat
    flink_server.denied_actions = set()
    httpserver.clear()  # now the endpoint answers 500
    httpserver.expect_request("/other").respond_with_data("")
    assert run(capsys, config)[0] == 0
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("flink_alerts")]
    logged = "\n".join(ours) + run.stderr
    assert "heartbeat to localhost" in logged and "secret-check" not in logged


def test_dry_run_neither_beats_nor_alerts(tmp_path, capsys, flink_server, hooks, httpserver):
    team, operators = hooks
    config = configure(
        tmp_path,
        flink_server,
        team,
        operators,
        heartbeat_url=httpserver.url_for("/hb"),
        self_alerts={"receiver": "hook1", "failed_runs": 1},
    )
    flink_server.denied_actions = {"GetEvents"}
    run(capsys, config, "--dry-run")
    assert httpserver.log == [] and operators.attempts == 0


def test_self_alerts_must_name_a_receiver(tmp_path, capsys, flink_server, hooks):
    team, operators = hooks
    config = configure(tmp_path, flink_server, team, operators, self_alerts={"receiver": "pager"})
    from flink_alerts.cli import main

    assert main(["check", "--config", str(config)]) == 2
    assert "self_alerts.receiver: unknown receiver 'pager'" in capsys.readouterr().err


def test_healthy_runs_do_not_rewrite_the_health_record(tmp_path, capsys, flink_server, hooks):
    team, operators = hooks
    flink_server.generate(3)
    config = configure(tmp_path, flink_server, team, operators)
    backend = FileBackend(str(tmp_path / "checkpoints"))
    versions = []
    for _ in range(3):
        assert run(capsys, config)[0] == 0
        versions.append(backend.load("bridge-health").version)
    assert versions == [1, 1, 1] and operators.attempts == 0  # written once, then left alone


def test_alerts_parked_in_backoff_still_count_as_parked(tmp_path, capsys, flink_server, hooks):
    """Between retries nothing is due, yet the receiver is still behind: no "recovered" then."""
    team, operators = hooks
    flink_server.generate(7)
    self_alerts = {"receiver": "hook1", "parked_longer_than": "0s"}
    config = configure(tmp_path, flink_server, team, operators, self_alerts=self_alerts)
    document = json.loads(config.read_text())
    document["delivery"] = {"initial_backoff": "1h", "max_backoff": "1h"}
    config.write_text(json.dumps(document))
    team.status = 503
    for _ in range(3):
        run(capsys, config)
    assert team.attempts == 1  # later runs found nothing due
    assert notices(operators) == [("firing", "BRIDGE_DEGRADED")]
