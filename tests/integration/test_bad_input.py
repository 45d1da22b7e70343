"""Hostile inputs through the CLI: each one a clear line and the right exit code, no secret shown."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from flink_alerts.cli import main
from flink_alerts.handler import parse_timer_event
from tests.integration.test_run import write_config
from tests.servers.flink_server import FlinkServer
from tests.servers.receiver import ReceiverServer

SMTP_PASSWORD = "smtp-pass-Zq81xv"
STS_TOKEN = "sts-token-Kd93mQ0p"
HOOK_TOKEN = "hook-token-Wn47aa"


def check(capsys: pytest.CaptureFixture[str], path: Path, *command: str) -> tuple[int, str]:
    code = main([*(command or ["check"]), "--config", str(path)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "config.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def assert_config_error(code: int, output: str, *needles: str) -> None:
    assert code == 2, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flink-alerts: configuration error: "), output
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize(
    "url", ["not-a-url", "", "htps://oapi.dingtalk.com/robot/send", "https://"]
)
@pytest.mark.parametrize(("kind", "key"), [("dingtalk", "webhook"), ("webhook", "url")])
def test_unusable_receiver_url_fails_at_load(tmp_path, capsys, url, kind, key):
    text = f"receivers:\n  - {{name: r, type: {kind}, {key}: '{url}'}}\n"
    code, output = check(capsys, write(tmp_path, text))
    assert_config_error(code, output, f"receivers[0].{key}", "http:// or https:// URL")
    assert url in ("", "https://") or url not in output


def test_the_same_target_twice_names_both_entries(tmp_path, capsys):
    text = (
        "targets:\n  - {workspace: w, namespace: n}\n  - {workspace: v, namespace: n}\n"
        "  - {workspace: w, namespace: n, deployment_ids: [d]}\n"
    )
    code, output = check(capsys, write(tmp_path, text))
    assert_config_error(code, output, "targets[2]", "targets[0]", "w/n")


def test_empty_file_and_no_config_say_what_is_missing(tmp_path, capsys, monkeypatch):
    code, output = check(capsys, write(tmp_path, "# nothing yet\n"))
    assert_config_error(code, output, "config.yaml", "empty")
    monkeypatch.delenv("FLINK_ALERTS_CONFIG", raising=False)
    code = main(["check"])
    assert_config_error(code, capsys.readouterr().err, "--config", "FLINK_ALERTS_CONFIG")


@pytest.mark.parametrize("encoding", ["utf-16", "latin-1"])
def test_a_config_that_is_not_utf8(tmp_path, capsys, encoding):
    path = write(tmp_path, "targets: []\ntimezone: Europe/Zürich\n".encode(encoding))
    code, output = check(capsys, path)
    assert_config_error(code, output, "config.yaml", "not UTF-8")


@pytest.mark.parametrize("name", ["TARGETS", "RECEIVERS", "DELIVERY"])
def test_invalid_json_in_a_variable_names_it(tmp_path, capsys, monkeypatch, name):
    monkeypatch.setenv(f"FLINK_ALERTS_{name}", "[{oops")
    code, output = check(capsys, write(tmp_path, "targets: []\n"))
    assert_config_error(code, output, f"FLINK_ALERTS_{name}", "not valid JSON")


@pytest.mark.parametrize(
    ("text", "key", "allowed"),
    [
        ("page_size: " + "9" * 5000 + "\n", "page_size", "from 1 to 100"),
        ("max_pages: -" + "9" * 5000 + "\n", "max_pages", "from 1 to 10000"),
        ("deadline_s: .inf\n", "deadline_s", "from 1 to 86400"),
        ("deadline_s: 1e300\n", "deadline_s", "from 1 to 86400"),
        ("timeout_s: .nan\n", "timeout_s", "from 0.001 to 600"),
        ("overlap_window: 1000000d\n", "overlap_window", "from 0s to 7d"),
        ("start_from: 1000000d\n", "start_from", "from 0s to 365d"),
        ("delivery: {max_attempts: 1e400}\n", "delivery.max_attempts", "from 1 to 1000"),
        ("delivery: {max_age: " + "9" * 5000 + "}\n", "delivery.max_age", "from 0s to 30d"),
        ("fanout: {shards: " + "9" * 5000 + "}\n", "fanout.shards", "from 1 to 1000"),
        (
            "self_alerts: {receiver: r, parked_longer_than: 1000000d}\n",
            "self_alerts.parked_longer_than",
            "from 0s to 7d",
        ),
        ("discover: {refresh: .inf}\n", "discover.refresh", "finite number"),
        ("discover: {refresh: 1000000000000d}\n", "discover.refresh", "less than or equal to"),
    ],
)
def test_out_of_range_numbers_name_the_key_and_the_range(tmp_path, capsys, text, key, allowed):
    code, output = check(capsys, write(tmp_path, "targets: []\n" + text))
    assert_config_error(code, output, f"{key}: ", allowed)


def test_a_huge_number_in_a_variable(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FLINK_ALERTS_CONCURRENCY", "7" * 5000)
    code, output = check(capsys, write(tmp_path, "targets: []\n"))
    assert_config_error(code, output, "concurrency: ", "from 1 to 64")


def alias_bomb(levels: int) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        refs = ",".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_rejected_in_milliseconds(tmp_path, capsys):
    bomb = alias_bomb(9)
    assert len(bomb) < 450
    started = time.perf_counter()
    code, output = check(capsys, write(tmp_path, bomb))
    assert time.perf_counter() - started < 0.5
    assert_config_error(code, output, "config.yaml", "aliases")


def test_a_self_referencing_alias_is_rejected(tmp_path, capsys):
    code, output = check(capsys, write(tmp_path, "targets: &t [*t]\n"))
    assert_config_error(code, output, "config.yaml", "alias")


@pytest.mark.parametrize(
    "event",
    [
        b'{"triggerTime": "2026-11-26T07:49:00Z", "triggerName": "t", "payload": "awesome-fc"}',
        b"awesome-fc",
        b'{"payload": "{\\"targets\\": 5}"}',
        b"\xff\xfe",
    ],
)
def test_an_unreadable_timer_payload_runs_all_targets(event, caplog):
    with caplog.at_level("WARNING", logger="flink_alerts.handler"):
        assert parse_timer_event(event) is None
    assert "running all targets" in caplog.text


# -- secrets echoed by others -------------------------------------------------------------


def test_a_secret_pasted_into_the_wrong_key_is_not_repeated(tmp_path, capsys):
    for text in (
        f"delivery: {{max_age: '{HOOK_TOKEN}'}}\n",
        f"start_from: '{HOOK_TOKEN}'\n",
        f"page_size: '{HOOK_TOKEN}'\n",
        f"receivers:\n  - {{name: r, type: slack, webhook: s, rate_limit: '{HOOK_TOKEN}'}}\n",
    ):
        code, output = check(capsys, write(tmp_path, text))
        assert code == 2 and HOOK_TOKEN not in output, output


class EchoingSmtp:
    """An SMTP server whose DATA reply repeats the password it was configured with."""

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        return f"554 5.7.1 rejected, password {SMTP_PASSWORD} is not {SMTP_PASSWORD[::-1]}"


@pytest.fixture
def echoing_smtp() -> Iterator[Controller]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    controller = Controller(EchoingSmtp(), hostname="127.0.0.1", port=port)
    controller.start()
    yield controller
    controller.stop()


def email_config(tmp_path: Path, smtp: Controller, flink: FlinkServer) -> Path:
    mail = {
        "name": "mail",
        "type": "email",
        "host": "127.0.0.1",
        "port": smtp.port,
        "security": "none",
        "password": SMTP_PASSWORD,
        "sender": "alerts@example.com",
        "to": ["oncall@example.com"],
    }
    path = write_config(tmp_path, flink, [])
    path.write_text(json.dumps({**json.loads(path.read_text()), "receivers": [mail]}))
    return path


def cloud_env(monkeypatch: pytest.MonkeyPatch, flink: FlinkServer) -> None:
    creds = flink.credentials
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", creds.access_key_id)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", creds.access_key_secret)
    if creds.security_token:
        monkeypatch.setenv("ALIBABA_CLOUD_SECURITY_TOKEN", creds.security_token)


def test_an_smtp_reply_repeating_the_password_is_masked(
    tmp_path, capsys, monkeypatch, echoing_smtp, flink_server
):
    flink_server.generate(8)
    cloud_env(monkeypatch, flink_server)
    path = email_config(tmp_path, echoing_smtp, flink_server)
    code, output = check(capsys, path, "run")
    assert code == 0 and "554" in output, output
    code, output = check(capsys, path, "test-send", "--receiver", "mail")
    assert code == 1 and "554" in output and "***" in output, output
    for form in (SMTP_PASSWORD, SMTP_PASSWORD[::-1]):
        assert (form in output) == (form != SMTP_PASSWORD), output


def test_an_api_error_repeating_the_sts_token_is_masked(
    tmp_path, capsys, monkeypatch, flink_server_factory
):
    flink = flink_server_factory(security_token=STS_TOKEN)
    cloud_env(monkeypatch, flink)
    with ReceiverServer() as receiver:
        monkeypatch.setenv("HOOK_URL", f"{receiver.url}?token={HOOK_TOKEN}")
        text = (
            f"endpoint: {flink.url}\ncheckpoint: file://{tmp_path / 'cp'}\n"
            f"targets: [{{workspace: {flink.workspace}, namespace: {flink.namespace}}}]\n"
            "receivers: [{name: hook, type: webhook, url: '${HOOK_URL}'}]\n"
        )
        echo = {"RequestId": STS_TOKEN, "Code": f"Denied.{STS_TOKEN}", "Message": HOOK_TOKEN}
        flink.inject("raw", status=403, body=echo)
        code, output = check(capsys, write(tmp_path, text), "run")
    assert code == 1 and "Denied.***" in output, output
    assert STS_TOKEN not in output and HOOK_TOKEN not in output


def test_an_event_quoting_the_accesskey_secret_is_masked_on_the_console(
    tmp_path, capsys, monkeypatch, flink_server
):
    cloud_env(monkeypatch, flink_server)
    secret = flink_server.credentials.access_key_secret
    flink_server.generate(3)
    flink_server.add_events(
        [
            {
                "eventId": "ev-leak",
                "eventName": "JOB_FAILED",
                "createdAt": datetime.now(timezone.utc),
                "deploymentId": "dep-a",
                "message": f"Job failed: bad config accessKeySecret={secret}",
            }
        ]
    )
    path = write_config(tmp_path, flink_server, [])
    path.write_text(
        path.read_text().replace(
            '"receivers": []', '"receivers": [{"name": "c", "type": "console"}]'
        )
    )
    for command in (["run", "--dry-run"], ["run"]):
        code, output = check(capsys, path, *command)
        assert code == 0 and "bad config accessKeySecret=***" in output, output
        assert secret not in output
