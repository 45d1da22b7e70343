"""End-to-end alerting: incidents, folding, resolved notices, silences, parked receivers.

The local Flink server in, a real HTTP receiver out, file records, the real CLI.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from itertools import count
from typing import Any

from tests.integration.test_run import run, write_config
from tests.servers.flink_server import FlinkServer, ms_of
from tests.servers.receiver import ReceiverServer

ROUTE = {"group_by": ["deployment"], "repeat_interval": "1s"}
_serial = count(1)


def events(
    server: FlinkServer,
    deployment: str,
    messages: list[str],
    name="JOB_RESTARTING",
    workspace: str | None = None,
):
    """Events a millisecond apart, ending now, with fresh ids."""
    now = datetime.now(timezone.utc)
    raw = [
        {
            "eventId": f"e2e-{next(_serial)}",
            "eventName": name,
            "createdAt": ms_of(now - timedelta(milliseconds=len(messages) - i)),
            "deploymentId": deployment,
            "jobId": "job-1",
            "message": message,
            "namespace": server.namespace,
            "workspace": workspace or server.workspace,
        }
        for i, message in enumerate(messages)
    ]
    server.add_events(raw)
    return raw


def alerts(receiver_server) -> list[dict[str, Any]]:
    return [alert for body in receiver_server.bodies for alert in body["alerts"]]


def config(tmp_path, server, receivers, **extra):
    extra.setdefault("routes", [ROUTE])
    return write_config(tmp_path, server, receivers, **extra)


def test_a_restart_loop_of_200_events_over_3_runs_is_at_most_3_messages_with_the_true_count(
    tmp_path, capsys, flink_server, receiver, cloud_env
):
    flink_server.add_deployment("dep-loop", "orders-etl")
    path = config(tmp_path, flink_server, [receiver])
    folded = 0
    for batch in (67, 67, 66):
        events(flink_server, "dep-loop", ["Job is restarting: TaskManager lost"] * batch)
        code, summary = run(capsys, path)
        assert code == 0, summary
        folded += summary["folded"]
        time.sleep(1.1)  # the route's repeat_interval ends between runs
    sent = alerts(receiver)
    assert 1 <= len(receiver.bodies) <= 3
    assert all(alert["deploymentName"] == "orders-etl" for alert in sent)
    assert sum(alert["count"] for alert in sent) == 200  # the true count, nothing lost
    assert any("events since" in line for alert in sent for line in alert["summary"])
    assert folded >= 197


def test_a_failure_then_running_is_one_alert_and_one_resolved_notice(
    tmp_path, capsys, flink_server, receiver, cloud_env
):
    flink_server.add_deployment("dep-1", "payments")
    path = config(tmp_path, flink_server, [receiver])
    failed = "The state transition of deployment dep-1 from RUNNING to FAILED is completed."
    events(flink_server, "dep-1", [failed], name="STATE_TRANSITION_IS_COMPLETED")
    code, first = run(capsys, path)
    running = "The state transition of deployment dep-1 from STARTING to RUNNING is completed."
    events(flink_server, "dep-1", [running], name="STATE_TRANSITION_IS_COMPLETED")
    code, second = run(capsys, path)
    code, third = run(capsys, path)
    assert [body["status"] for body in receiver.bodies] == ["firing", "resolved"]
    assert first["sent"] == 1 and second["resolved"] == 1 and second["sent"] == 1
    assert third["sent"] == 0 and third["resolved"] == 0


def test_listjobs_running_resolves_and_its_failure_is_the_cause(
    tmp_path, capsys, flink_server, receiver, cloud_env
):
    flink_server.add_job(
        "dep-2",
        "FAILED",
        failure={"reason": "JOB_FAILED", "message": "Checkpoint expired before completing"},
    )
    path = config(tmp_path, flink_server, [receiver])
    events(flink_server, "dep-2", ["Job failed"], name="JOB_FAILED")
    code, first = run(capsys, path)
    (alert,) = alerts(receiver)
    assert alert["cause"] == "JOB_FAILED: Checkpoint expired before completing"
    assert flink_server.request_count("ListJobs") == 1  # one call per failed deployment
    flink_server.add_job("dep-2", "RUNNING", started_ms=ms_of(datetime.now(timezone.utc)) + 1000)
    code, second = run(capsys, path)
    assert second["resolved"] == 1 and receiver.bodies[-1]["status"] == "resolved"
    calls = flink_server.request_count("ListJobs")
    run(capsys, path)
    assert flink_server.request_count("ListJobs") == calls  # no open incident: no call


def test_a_silenced_namespace_sends_nothing_and_counts_silenced(
    tmp_path, capsys, flink_server, receiver, cloud_env
):
    silence = {
        "match": {"namespace": flink_server.namespace},
        "starts_at": "2020-01-01T00:00:00Z",
        "ends_at": "2100-01-01T00:00:00Z",
        "comment": "maintenance",
    }
    path = config(tmp_path, flink_server, [receiver], silences=[silence])
    events(flink_server, "dep-3", ["Job failed"] * 4, name="JOB_FAILED")
    code, summary = run(capsys, path)
    assert code == 0 and summary["alerts"] == 4 and summary["silenced"] == 4
    assert receiver.bodies == [] and summary["sent"] == 0 and summary["pending"] == 0


def test_a_receiver_with_a_bad_token_for_2_runs_then_fixed_gets_every_alert_once(
    tmp_path, capsys, flink_server, receiver, cloud_env
):
    path = config(tmp_path, flink_server, [receiver], routes=[{**ROUTE, "repeat_interval": "0s"}])
    receiver.status = 401
    sent_ids = []
    for deployment in ("dep-a", "dep-b"):
        sent_ids += [e["eventId"] for e in events(flink_server, deployment, ["x"], "JOB_FAILED")]
        code, summary = run(capsys, path)
        assert code == 1 and summary["dropped"] == 0 and summary["pending"] == len(sent_ids)
        assert summary["errors"] == [
            f"receiver hook0: needs a fix: {summary['errors'][0].split('needs a fix: ')[1]}"
        ]
        assert "HTTP 401" in summary["errors"][0] and "needs a fix" in run.stderr
    receiver.status = 200
    code, summary = run(capsys, path)
    assert code == 0 and summary["pending"] == 0
    assert sorted(alert["eventId"] for alert in alerts(receiver)) == sorted(sent_ids)


def test_the_rate_limit_is_shared_by_separate_runs(tmp_path, capsys, flink_server, cloud_env):
    with ReceiverServer() as limited:
        path = write_config(tmp_path, flink_server, [limited], routes=[ROUTE])
        text = path.read_text().replace(
            '"type": "webhook"', '"type": "webhook", "rate_limit": "1/min"'
        )
        path.write_text(text)
        events(flink_server, "dep-a", ["x"], "JOB_FAILED")
        code, first = run(capsys, path)
        events(flink_server, "dep-b", ["x"], "JOB_FAILED")
        code, second = run(capsys, path)  # a new process would read the same record
        assert first["sent"] == 1 and second["sent"] == 0 and second["pending"] == 1
        assert len(limited.bodies) == 1


def test_alerts_waiting_for_a_renamed_receiver_are_reported_and_re_routed(
    tmp_path, capsys, flink_server, receiver, cloud_env
):
    path = config(tmp_path, flink_server, [receiver])
    receiver.status = 503
    raw = events(flink_server, "dep-a", ["x"], "JOB_FAILED")
    code, first = run(capsys, path)
    assert first["pending"] == 1
    path.write_text(path.read_text().replace('"hook0"', '"renamed"'))
    receiver.status = 200
    code, second = run(capsys, path)
    (error,) = second["errors"]
    assert (
        error.startswith("receiver hook0: no longer configured") and "re-routed to renamed" in error
    )
    assert [alert["eventId"] for alert in alerts(receiver)] == [raw[0]["eventId"]]
    code, third = run(capsys, path)
    assert third["errors"] == [] and len(receiver.bodies) == 1


def test_a_route_grouped_by_namespace_sends_one_message_for_a_fleet(
    tmp_path, capsys, flink_server, receiver, cloud_env
):
    flink_server.workspaces.add("ws-second")
    targets = [
        {"workspace": workspace, "namespace": flink_server.namespace}
        for workspace in (flink_server.workspace, "ws-second")
    ]
    route = {**ROUTE, "group_by": ["namespace"]}
    path = config(tmp_path, flink_server, [receiver], routes=[route], targets=targets)
    events(flink_server, "dep-a", ["x"], "JOB_FAILED")
    events(flink_server, "dep-b", ["x"], "JOB_FAILED", workspace="ws-second")
    code, summary = run(capsys, path)
    assert code == 0 and summary["targets"] == 2 and summary["alerts"] == 2
    (body,) = receiver.bodies
    assert sorted(alert["deploymentId"] for alert in body["alerts"]) == ["dep-a", "dep-b"]


def test_a_terminal_failure_after_restarts_is_sent_at_once_not_folded(
    tmp_path, capsys, flink_server, receiver, cloud_env
):
    path = config(tmp_path, flink_server, [receiver], routes=[{"repeat_interval": "1h"}])
    events(flink_server, "dep-1", ["Job is restarting: TaskManager lost"] * 5)
    run(capsys, path)
    terminal = "Job failed: Recovery is suppressed by NoRestartBackoffTimeStrategy"
    (failed,) = events(flink_server, "dep-1", [terminal], name="JOB_FAILED")
    code, summary = run(capsys, path)
    assert code == 0 and summary["sent"] == 1, summary
    assert failed["eventId"] in [alert["eventId"] for alert in receiver.bodies[-1]["alerts"]]
