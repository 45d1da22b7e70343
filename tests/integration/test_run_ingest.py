"""What is new, end to end: the local Flink server in, a real HTTP receiver out."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest

from flink_alerts.cli import main
from tests.integration.test_run import delivered_ids, run, write_config
from tests.servers.flink_server import FlinkServer, ms_of
from tests.servers.receiver import ReceiverServer


@pytest.fixture
def receiver():
    with ReceiverServer() as server:
        yield server


@pytest.fixture
def cloud_env(monkeypatch, flink_server: FlinkServer) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", flink_server.credentials.access_key_id)
    monkeypatch.setenv(
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET", flink_server.credentials.access_key_secret
    )


def failure(server: FlinkServer, event_id: str, at: datetime | None = None, **raw) -> dict:
    event = {
        "eventId": event_id,
        "eventName": "JOB_FAILED",
        "createdAt": ms_of(at or datetime.now(timezone.utc)),
        "deploymentId": "dep-alpha",
        "jobId": "job-1",
        "message": "Job failed: java.lang.OutOfMemoryError: Java heap space",
    }
    if raw:
        event["_raw"] = raw
    server.add_events([event])
    return event


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_a_latest_start_over_300_recent_failures_then_one_failure_sends_exactly_it(
    tmp_path, capsys, flink_server_factory, receiver, monkeypatch, order
):
    server = flink_server_factory(order=order)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", server.credentials.access_key_id)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", server.credentials.access_key_secret)
    now = datetime.now(timezone.utc)
    server.generate(300, start=now - timedelta(minutes=9), step_s=1.8, failure_every=1)
    config = write_config(tmp_path, server, [receiver], start_from="latest")
    code, first = run(capsys, config)
    assert code == 0 and first["alerts"] == 0 and receiver.bodies == []
    real = failure(server, "the-real-one")
    code, second = run(capsys, config)
    assert code == 0 and second["alerts"] == 1, second
    assert delivered_ids(receiver) == ["the-real-one"]
    assert real["eventId"] in receiver.bodies[0]["alerts"][0]["eventId"]


POISON = {
    "dated an hour ahead": {"createdAt": "2099-01-01T00:00:00Z"},
    "null createdAt": {"createdAt": None},
    "garbage createdAt": {"createdAt": "yesterday"},
    "no eventId": {"eventId": None},
    "a lone surrogate": {"message": "Job failed \ud83d"},
    "createdAt at year 9999": {"createdAt": "9999-12-31T23:59:59Z"},
}


@pytest.mark.parametrize("poison", sorted(POISON))
def test_a_poison_event_is_alerted_once_and_blocks_nothing(
    tmp_path, capsys, flink_server, receiver, cloud_env, poison
):
    flink_server.generate(20)
    config = write_config(tmp_path, flink_server, [receiver])
    assert run(capsys, config)[0] == 0
    delivered_before = len(delivered_ids(receiver))
    now = datetime.now(timezone.utc)
    failure(flink_server, "poison", now - timedelta(seconds=2), **POISON[poison])
    failure(flink_server, "after-it", now - timedelta(seconds=1))
    for _ in range(3):
        code, summary = run(capsys, config)
        assert code == 0 and summary["errors"] == [], summary["errors"]
    sent = delivered_ids(receiver)[delivered_before:]
    assert sent.count("after-it") == 1
    assert len(sent) == 2, sent  # the poison event once too, with what is known of it
    checkpoint = next((tmp_path / "checkpoints").glob("*.json")).read_bytes()
    checkpoint.decode("utf-8")  # saved: valid UTF-8 whatever the event text held


def test_a_total_size_smaller_than_the_data_does_not_hide_pages(
    tmp_path, capsys, flink_server, receiver, cloud_env
):
    flink_server.generate(20)
    config = write_config(tmp_path, flink_server, [receiver], page_size=10)
    run(capsys, config)
    flink_server.total_size_offset = -25
    for number in range(30):
        failure(flink_server, f"late-{number:02d}")
    code, summary = run(capsys, config)
    assert code == 0 and summary["new_events"] == 30 and summary["alerts"] == 30, summary


def test_a_run_with_nothing_new_writes_nothing(tmp_path, capsys, flink_server, receiver, cloud_env):
    flink_server.generate(40)
    config = write_config(tmp_path, flink_server, [receiver])
    run(capsys, config)
    records = sorted((tmp_path / "checkpoints").glob("*.json"))
    assert len(records) == 3  # the target, the alerting record, the receiver
    before = [(path.stat().st_ino, path.stat().st_mtime_ns) for path in records]
    flink_server.reset_counts()
    code, summary = run(capsys, config)
    assert code == 0 and summary["sent"] == 0
    assert [(path.stat().st_ino, path.stat().st_mtime_ns) for path in records] == before
    assert flink_server.request_count("GetEvents") == 1


@pytest.mark.parametrize(
    "edit, problem",
    [
        (
            lambda r: r["checkpoint"]["streams"][""].update(floor="2026-11-27T08:00:00"),
            "no time zone",
        ),
        (lambda r: r.update(lease={"owner": "me", "expires_at": "soon"}), "malformed lease"),
    ],
)
def test_a_hand_edited_checkpoint_says_what_is_wrong_in_run_and_show(
    tmp_path, capsys, flink_server, receiver, cloud_env, edit, problem
):
    flink_server.generate(5)
    config = write_config(tmp_path, flink_server, [receiver])
    run(capsys, config)
    target = f"{flink_server.workspace}/{flink_server.namespace}"
    path = tmp_path / "checkpoints" / f"{quote(target, safe='')}.json"
    header, body = path.read_text().split("\n", 1)
    record = json.loads(body)
    edit(record)
    path.write_text(f"{header}\n{json.dumps(record)}")
    code, summary = run(capsys, config)
    assert (
        code == 1 and problem in summary["errors"][0] and "checkpoint reset" in summary["errors"][0]
    )
    assert main(["checkpoint", "show", "--config", str(config), "--target", target]) == 1
    err = capsys.readouterr().err
    assert problem in err and "unexpected" not in err
