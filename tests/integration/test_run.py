"""End-to-end runs: the local Flink server in, real HTTP receivers out, file checkpoints."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from flink_alerts.cli import main
from flink_alerts.errors import ConfigError
from flink_alerts.handler import handle
from tests.servers.flink_server import FlinkServer
from tests.servers.receiver import ReceiverServer

EVERY_EVENT_ROUTE = {"group_by": ["target"], "repeat_interval": "0s", "send_resolved": False}


def write_config(
    tmp_path: Path, flink: FlinkServer, receivers: list[ReceiverServer], **extra: Any
) -> Path:
    config: dict[str, Any] = {
        "endpoint": flink.url,
        "targets": [{"workspace": flink.workspace, "namespace": flink.namespace}],
        "checkpoint": f"file://{tmp_path / 'checkpoints'}",
        "start_from": "earliest",
        "receivers": [
            {"name": f"hook{i}", "type": "webhook", "url": server.url}
            for i, server in enumerate(receivers)
        ],
        "delivery": {"initial_backoff": "0s", "max_backoff": "0s"},
        # Every failure in one message per run: these tests are about delivery, not folding.
        "routes": [EVERY_EVENT_ROUTE] if receivers else [],
        **extra,
    }
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def run(capsys, config: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    code = main(["run", "--config", str(config), *extra])
    captured = capsys.readouterr()
    run.stderr = captured.err
    return code, json.loads(captured.out.strip().splitlines()[-1])


def run_process(config: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "flink_alerts.cli", "run", "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def delivered_ids(server: ReceiverServer) -> list[str]:
    return [alert["eventId"] for body in server.bodies for alert in body["alerts"]]


def repeated_messages(server: ReceiverServer) -> int:
    bodies = [json.dumps(body["alerts"], sort_keys=True) for body in server.bodies]
    return len(bodies) - len(set(bodies))


def failure_ids(flink: FlinkServer) -> list[str]:
    """The generated failures (failed, OOM, restarting); RUNNING/CANCELLED transitions are not."""
    failures = [
        e
        for e in flink.events
        if e["eventName"] != "STATE_TRANSITION_IS_COMPLETED" or "to FAILED" in e["message"]
    ]
    return [e["eventId"] for e in sorted(failures, key=lambda e: e["createdAt"])]


def test_three_runs_deliver_each_alert_exactly_once(
    tmp_path, capsys, flink_server, receiver, cloud_env
):
    flink_server.generate(60)
    config = write_config(tmp_path, flink_server, [receiver])
    code, first = run(capsys, config)
    assert code == 0, first
    assert first["new_events"] == 60 and first["alerts"] == len(failure_ids(flink_server)) > 0
    assert first["sent"] == 1 and first["pending"] == 0 and first["api_calls"] >= 1
    for _ in range(2):
        code, again = run(capsys, config)
        assert code == 0 and again["new_events"] == 0 and again["sent"] == 0
    flink_server.generate(14)
    code, later = run(capsys, config)
    assert later["new_events"] == 14 and later["sent"] == 1
    assert delivered_ids(receiver) == failure_ids(flink_server)  # once each, in event order


def test_receiver_down_for_two_runs_then_up(tmp_path, capsys, flink_server, receiver, cloud_env):
    flink_server.generate(21)
    config = write_config(tmp_path, flink_server, [receiver])
    receiver.status = 503
    for _ in range(2):
        code, summary = run(capsys, config)
        assert code == 0  # parked deliveries are not a failed run
        assert summary["sent"] == 0 and summary["failed"] == 1 and summary["dropped"] == 0
        assert summary["pending"] == len(failure_ids(flink_server))
        flink_server.generate(7)  # more failures arrive while the receiver is down
    receiver.status = 200
    code, summary = run(capsys, config)
    assert summary["sent"] == 1 and summary["pending"] == 0
    assert delivered_ids(receiver) == failure_ids(flink_server)
    assert receiver.attempts == 3


def test_permanent_failure_is_dropped_loudly(tmp_path, capsys, flink_server, receiver, cloud_env):
    flink_server.generate(7)
    receiver.status = 400
    code, summary = run(capsys, write_config(tmp_path, flink_server, [receiver]))
    assert code == 0 and summary["dropped"] == 1 and summary["pending"] == 0
    errors = [json.loads(line) for line in run.stderr.splitlines() if '"error"' in line]
    dropped = [line for line in errors if line["msg"].startswith("dropped alert")]
    assert len(dropped) == 1 and "hook0" in dropped[0]["msg"]
    assert failure_ids(flink_server)[0] in dropped[0]["msg"]


def test_first_run_latest_alerts_on_nothing_old(
    tmp_path, capsys, flink_server, receiver, cloud_env
):
    flink_server.generate(50)
    config = write_config(tmp_path, flink_server, [receiver], start_from="latest")
    code, first = run(capsys, config)
    assert code == 0 and first["alerts"] == 0 and receiver.bodies == []
    new = flink_server.generate(7)
    code, second = run(capsys, config)
    assert second["new_events"] == 7 and delivered_ids(receiver) == [new[-1]["eventId"]]


def test_a_backlog_beyond_max_pages_becomes_one_summary(
    tmp_path, capsys, flink_server, receiver, cloud_env
):
    flink_server.generate(70, failure_every=1)
    config = write_config(tmp_path, flink_server, [receiver], page_size=10, max_pages=2)
    code, summary = run(capsys, config)
    assert summary["fetched"] == 20 and summary["alerts"] == 21
    (body,) = receiver.bodies
    backlog = body["alerts"][0]
    assert (
        backlog["eventName"] == "EVENTS_NOT_SHOWN"
        and "50 older events not shown" in backlog["message"]
    )


def test_dry_run_sends_and_commits_nothing(tmp_path, capsys, flink_server, receiver, cloud_env):
    flink_server.generate(7)
    config = write_config(tmp_path, flink_server, [receiver])
    code = main(["run", "--config", str(config), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0 and "would send to hook0" in out and failure_ids(flink_server)[0] in out
    assert json.loads(out.strip().splitlines()[-1])["dry_run"] is True
    assert receiver.attempts == 0 and not (tmp_path / "checkpoints").exists()


def test_a_failing_target_does_not_stop_the_others(
    tmp_path, capsys, flink_server, receiver, cloud_env
):
    flink_server.generate(7)
    targets = [
        {"workspace": flink_server.workspace, "namespace": "no-such-namespace"},
        {"workspace": flink_server.workspace, "namespace": flink_server.namespace},
    ]
    code, summary = run(capsys, write_config(tmp_path, flink_server, [receiver], targets=targets))
    assert code == 1 and summary["sent"] == 1 and len(summary["errors"]) == 1
    assert "no-such-namespace" in summary["errors"][0]


def test_throttling_is_retried_within_the_run(tmp_path, capsys, flink_server, receiver, cloud_env):
    flink_server.generate(7)
    flink_server.inject("throttle", times=2)
    code, summary = run(capsys, write_config(tmp_path, flink_server, [receiver]))
    assert code == 0 and summary["sent"] == 1 and summary["api_calls"] >= 3


def test_configuration_error_exits_2_with_one_line(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("receivers:\n  - {name: x, type: slack, webhook: '${MISSING_HOOK}'}\n")
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "flink-alerts: configuration error: receivers[0].webhook: "
        "environment variable MISSING_HOOK is not set"
    )


def test_unreachable_checkpoint_sends_nothing_and_next_run_catches_up(
    tmp_path, capsys, flink_server, receiver, cloud_env
):
    flink_server.generate(14)
    blocked = tmp_path / "checkpoints"
    blocked.write_text("not a directory")
    config = write_config(tmp_path, flink_server, [receiver])
    code, summary = run(capsys, config)
    assert code == 1 and receiver.attempts == 0
    assert "cannot read checkpoint" in summary["errors"][0]
    blocked.unlink()
    code, summary = run(capsys, config)
    assert code == 0 and delivered_ids(receiver) == failure_ids(flink_server)


def test_corrupt_checkpoint_is_shown_and_reset(tmp_path, capsys, flink_server, receiver, cloud_env):
    flink_server.generate(7)
    config = write_config(tmp_path, flink_server, [receiver])
    run(capsys, config)
    target = f"{flink_server.workspace}/{flink_server.namespace}"
    (path,) = (tmp_path / "checkpoints").glob(f"{flink_server.workspace}*.json")
    path.write_text("# flink-alerts checkpoint version 3\n{broken")
    code, summary = run(capsys, config)
    assert code == 1 and "checkpoint is not valid JSON" in summary["errors"][0]
    assert str(tmp_path) in summary["errors"][0]  # the location, to go and look
    assert main(["checkpoint", "show", "--config", str(config), "--target", target]) == 1
    assert "checkpoint reset" in capsys.readouterr().err
    assert main(["checkpoint", "reset", "--config", str(config), "--target", target]) == 0
    assert main(["checkpoint", "show", "--config", str(config), "--target", target]) == 0
    shown = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert shown["checkpoint"]["streams"] == {} and shown["lease"] is None


def test_reset_of_a_target_without_checkpoint_writes_nothing_and_says_so(
    tmp_path, capsys, flink_server, receiver, cloud_env
):
    # A typo in --target used to print "checkpoint reset" and create a stray record.
    config = write_config(tmp_path, flink_server, [receiver])
    run(capsys, config)
    before = sorted(path.name for path in (tmp_path / "checkpoints").iterdir())
    typo = f"{flink_server.workspace}/{flink_server.namespace}-typo"
    assert main(["checkpoint", "reset", "--config", str(config), "--target", typo]) == 1
    out, err = capsys.readouterr()
    assert "no checkpoint" in err and "reset" not in out
    assert sorted(path.name for path in (tmp_path / "checkpoints").iterdir()) == before


def test_a_target_named_twice_is_run_once(tmp_path, capsys, flink_server, receiver, cloud_env):
    # It used to run twice at once: "targets": 2 and one of them "skipped" on its own lease.
    flink_server.generate(14)
    config = write_config(tmp_path, flink_server, [receiver])
    target = f"{flink_server.workspace}/{flink_server.namespace}"
    code, summary = run(capsys, config, "--target", target, "--target", target)
    assert code == 0 and summary["targets"] == 1 and summary["skipped"] == 0
    assert summary["sent"] >= 1


def test_two_processes_on_the_same_timer_event_deliver_once(
    tmp_path, flink_server, receiver, cloud_env
):
    flink_server.generate(70)
    receiver.delay_s = 0.5  # keep the first run busy while the second one starts
    config = write_config(tmp_path, flink_server, [receiver])
    runs = [run_process(config, cloud_env) for _ in range(2)]
    outputs = [process.communicate(timeout=60) for process in runs]
    summaries = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert all(process.returncode == 0 for process in runs), outputs
    assert sorted(s["skipped"] for s in summaries) in ([0, 0], [0, 1])
    counts = Counter(delivered_ids(receiver))
    assert sorted(counts) == sorted(failure_ids(flink_server))
    assert set(counts.values()) == {1}


def test_kill_9_during_delivery_loses_nothing(tmp_path, flink_server, cloud_env):
    flink_server.generate(14)
    with ReceiverServer() as fast, ReceiverServer() as slow:
        slow.delay_s = 3.0
        config = write_config(tmp_path, flink_server, [fast, slow])
        process = run_process(config, cloud_env)
        deadline = time.monotonic() + 30
        while not (fast.bodies and slow.attempts) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert fast.bodies and slow.attempts, "the run never reached the slow receiver"
        process.send_signal(signal.SIGKILL)
        process.wait()
        slow.delay_s = 0.0
        again = run_process(config, cloud_env)
        out, err = again.communicate(timeout=60)
        assert again.returncode == 0, err
        time.sleep(3.2)  # let the killed run's in-flight request land, to count it
        # Receivers are delivered to in parallel: the kill may fall in either one's send.
        for receiver in (fast, slow):
            assert sorted(set(delivered_ids(receiver))) == sorted(failure_ids(flink_server))
            assert repeated_messages(receiver) <= 1  # at most the message in flight


def test_fc_handler_runs_the_targets_of_its_payload(tmp_path, monkeypatch, flink_server, receiver):
    flink_server.generate(7)
    targets = [
        {"workspace": flink_server.workspace, "namespace": flink_server.namespace},
        {"workspace": flink_server.workspace, "namespace": "other"},
    ]
    config = write_config(tmp_path, flink_server, [receiver], targets=targets)
    monkeypatch.setenv("FLINK_ALERTS_CONFIG", str(config))
    for key in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"):
        monkeypatch.delenv(key, raising=False)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "functions"))
    import index

    class Credentials:  # what FC python3.10 puts on the context
        access_key_id = flink_server.credentials.access_key_id
        access_key_secret = flink_server.credentials.access_key_secret
        security_token = None

    class Context:
        credentials = Credentials()

        @staticmethod
        def get_remaining_time_in_ms() -> int:
            return 60_000

    target = f"{flink_server.workspace}/{flink_server.namespace}"
    event = json.dumps(
        {
            "triggerTime": "2026-11-26T07:49:00Z",
            "triggerName": "every-minute",
            "payload": json.dumps({"targets": [target]}),
        }
    ).encode()
    summary = json.loads(index.handler(event, Context()))
    assert summary["targets"] == 1 and summary["sent"] == 1 and summary["errors"] == []
    # A shard's timer naming a target the config no longer has: the others still run.
    flink_server.generate(7)
    gone = f"{flink_server.workspace}/retired"
    event = json.dumps({"payload": json.dumps({"targets": [gone, target]})}).encode()
    summary = json.loads(index.handler(event, Context()))
    assert summary["targets"] == 1 and summary["sent"] == 1
    assert summary["errors"] == [
        f"payload: {gone!r} is neither configured nor discovered now; skipped"
    ]


def test_readme_example_runs_twice_without_repeating(tmp_path, monkeypatch, capsys):
    repo = Path(__file__).resolve().parents[2]
    config = (repo / "examples" / "config.yaml").read_text()
    config = config.replace("file://examples/", f"file://{repo}/examples/")
    config = config.replace("file://./.flink-alerts", f"file://{tmp_path}/cp")
    path = tmp_path / "config.yaml"
    path.write_text(config)
    code, first = run(capsys, path)
    # one message per deployment (the default `group_by: [deployment]`)
    assert code == 0 and first["alerts"] == 4 and first["sent"] == 3
    code, second = run(capsys, path)
    assert code == 0 and second["new_events"] == 0 and second["sent"] == 0


def test_alerts_without_receivers_are_not_silent(tmp_path, capsys, flink_server, cloud_env):
    flink_server.generate(7)
    code, summary = run(capsys, write_config(tmp_path, flink_server, []))
    assert code == 1 and summary["alerts"] == 1 and summary["pending"] == 0
    assert "1 alerts and no receiver configured" in summary["errors"][0]


def test_in_fc_a_file_checkpoint_off_nas_stops_the_run_with_exit_2(
    tmp_path, monkeypatch, capsys, flink_server, receiver, cloud_env
):
    flink_server.generate(7)
    config = write_config(tmp_path, flink_server, [receiver])
    monkeypatch.setenv("FC_FUNCTION_NAME", "flink-alerts")
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("flink-alerts: configuration error: checkpoint: file://")
    assert "use oss://BUCKET/PREFIX or tablestore://INSTANCE/TABLE" in err
    assert not receiver.bodies and not (tmp_path / "checkpoints").exists()


def test_fc_handler_refuses_a_file_checkpoint_when_its_context_says_fc(tmp_path, monkeypatch):
    config = tmp_path / "config.yaml"
    config.write_text("checkpoint: file:///tmp/flink-alerts\n")
    monkeypatch.setenv("FLINK_ALERTS_CONFIG", str(config))
    monkeypatch.delenv("FC_FUNCTION_NAME", raising=False)

    class Context:
        class function:  # noqa: N801  (FC's context.function.name)
            name = "flink-alerts"

    with pytest.raises(ConfigError, match="checkpoint: file:///tmp/flink-alerts is not kept"):
        handle(b"{}", Context(), time.monotonic(), default_config=config)
