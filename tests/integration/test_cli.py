"""The CLI commands other than `run`, against local servers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flink_alerts.cli import main
from tests.servers.receiver import ReceiverServer


@pytest.fixture
def config(tmp_path, monkeypatch, flink_server):
    creds = flink_server.credentials
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", creds.access_key_id)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", creds.access_key_secret)
    receiver = ReceiverServer().__enter__()
    monkeypatch.setenv("HOOK_URL", receiver.url + "?token=hook-secret-token")
    path = tmp_path / "config.yaml"
    path.write_text(
        f"endpoint: {flink_server.url}\n"
        f"targets: [{{workspace: {flink_server.workspace}, namespace: {flink_server.namespace}}}]\n"
        "receivers:\n"
        "  - {name: hook, type: webhook, url: '${HOOK_URL}'}\n"
        "  - {name: screen, type: console}\n"
    )
    yield path, receiver
    receiver.__exit__()


def test_events_prints_json_lines_newest_first(config, capsys, flink_server):
    flink_server.generate(30, deployment_ids=["dep-a", "dep-b"])
    target = f"{flink_server.workspace}/{flink_server.namespace}"
    assert main(["events", "--config", str(config[0]), "--target", target, "--limit", "5"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    newest = sorted(flink_server.events, key=lambda e: e["createdAt"], reverse=True)[:5]
    assert [line["eventId"] for line in lines] == [e["eventId"] for e in newest]
    assert set(lines[0]) >= {"eventName", "createdAt", "deploymentId", "message"}
    assert (
        main(["events", "--config", str(config[0]), "--target", target, "--deployment", "dep-b"])
        == 0
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines and {line["deploymentId"] for line in lines} == {"dep-b"}


def test_events_reports_api_errors_in_one_line(config, capsys, flink_server):
    flink_server.denied_actions.add("GetEvents")
    target = f"{flink_server.workspace}/{flink_server.namespace}"
    assert main(["events", "--config", str(config[0]), "--target", target]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "stream:GetEvents" in err


def test_render_prints_the_exact_payload_without_sending(config, capsys):
    path, receiver = config
    assert main(["render", "--config", str(path), "--receiver", "hook"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["alerts"] and body["test"] is False
    assert receiver.attempts == 0


def test_test_send_reports_the_answer_and_masks_the_url(config, capsys):
    path, receiver = config
    assert main(["test-send", "--config", str(path), "--receiver", "hook"]) == 0
    assert "hook:" in capsys.readouterr().out
    (body,) = receiver.bodies
    assert body["test"] is True and len(body["alerts"]) == 1
    receiver.status = 503
    assert main(["test-send", "--config", str(path), "--receiver", "hook"]) == 1
    err = capsys.readouterr().err
    assert "retryable" in err and "hook-secret-token" not in err


def test_check_and_unknown_receiver(config, capsys):
    path, _ = config
    assert main(["check", "--config", str(path)]) == 0
    assert "2 receivers" in capsys.readouterr().out
    assert main(["render", "--config", str(path), "--receiver", "nobody"]) == 2
    assert "no receiver named 'nobody'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("checkpoint", "code"),
    [("oss://bucket/prefix", 0), ("tablestore://instance/table", 0), ("tablestore://instance", 2)],
)
def test_check_validates_cloud_checkpoints_without_credentials(
    tmp_path, capsys, monkeypatch, checkpoint, code
):
    for key in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"):
        monkeypatch.delenv(key, raising=False)
    path = tmp_path / "config.yaml"
    path.write_text(f"checkpoint: {checkpoint}\nreceivers:\n  - {{name: c, type: console}}\n")
    assert main(["check", "--config", str(path)]) == code
    err = capsys.readouterr().err
    assert ("Traceback" not in err) and (code == 0 or "checkpoint: use tablestore://" in err)


def test_no_credentials_is_a_clear_error_before_any_request(
    config, capsys, monkeypatch, tmp_path, flink_server
):
    for key in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ALIBABA_CLOUD_CREDENTIALS_FILE", str(tmp_path / "none"))
    assert main(["run", "--config", str(config[0])]) == 1
    assert "no AccessKey found" in capsys.readouterr().err
    assert flink_server.request_count() == 0


def test_events_from_a_replay_file_newest_first(capsys, monkeypatch):
    repo = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(repo)
    target = "a1b2c3d4e5/orders-prod"
    args = ["events", "--config", "examples/config.yaml", "--target", target, "--limit", "2"]
    assert main([*args, "--deployment", "d-7f3a9c01"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["eventId"] for line in lines] == ["ev-0006-7f3a", "ev-0005-7f3a"]


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_events_refuses_a_limit_below_one(capsys, limit):
    args = ["events", "--config", "examples/config.yaml", "--target", "a/b", "--limit", limit]
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert "--limit: must be 1 or more" in capsys.readouterr().err


def test_output_piped_into_head_ends_quietly():
    # `flink-alerts events ... | head -1`: the reader goes away before everything is printed.
    repo = Path(__file__).resolve().parents[2]
    args = ["events", "--config", "examples/config.yaml", "--target", "a1b2c3d4e5/orders-prod"]
    process = subprocess.Popen(
        [sys.executable, "-m", "flink_alerts.cli", *args],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()  # before the first line is written
    _, err = process.communicate(timeout=60)
    assert err.decode() == ""
