"""`flink-alerts checkpoint show|reset` for the `alerting` record and the receivers' records,
through the real CLI, after real runs (local Flink server, a real HTTP receiver, file records)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flink_alerts.cli import main
from tests.integration.test_alerting_run import config, events
from tests.integration.test_run import run


def checkpoint(capsys, path: Path, *args: str) -> tuple[int, str, str]:
    code = main(["checkpoint", *args, "--config", str(path)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def shown(out: str) -> dict:
    return json.loads(out)


@pytest.fixture
def parked(tmp_path, capsys, flink_server, receiver, cloud_env) -> Path:
    """One run whose two alerts wait for a receiver that answers 503."""
    path = config(tmp_path, flink_server, [receiver])
    receiver.status = 503
    events(flink_server, "dep-a", ["x"], "JOB_FAILED")
    events(flink_server, "dep-b", ["y"], "JOB_FAILED")
    code, summary = run(capsys, path)
    assert summary["pending"] == 2
    return path


def test_show_the_alerting_record_and_a_receivers_record(capsys, parked):
    code, out, _ = checkpoint(capsys, parked, "show", "--record", "alerting")
    alerting = shown(out)
    assert code == 0 and alerting["where"].endswith("key alerting")
    assert len(alerting["record"]["incidents"]) == 2 and alerting["record"]["receivers"] == [
        "hook0"
    ]
    code, out, _ = checkpoint(capsys, parked, "show", "--receiver", "hook0")
    hook = shown(out)
    assert code == 0 and hook["where"].endswith("key receiver.hook0") and hook["lease"] is None
    assert sorted(e["alert"]["event"]["deployment_id"] for e in hook["record"]["outbox"]) == [
        "dep-a",
        "dep-b",
    ]


def test_reset_a_receiver_drops_what_waits_and_says_how_much(capsys, parked, receiver):
    code, out, _ = checkpoint(capsys, parked, "reset", "--receiver", "hook0")
    assert code == 0 and "2 pending alerts dropped" in out
    code, out, _ = checkpoint(capsys, parked, "show", "--receiver", "hook0")
    assert shown(out)["record"]["outbox"] == []
    receiver.status = 200
    code, summary = run(capsys, parked)
    assert code == 0 and summary["pending"] == 0 and receiver.bodies == []


def test_reset_the_alerting_record_makes_open_incidents_new(capsys, parked, flink_server):
    code, out, _ = checkpoint(capsys, parked, "reset", "--record", "alerting")
    assert code == 0 and "open incidents alert as new" in out
    code, out, _ = checkpoint(capsys, parked, "show", "--record", "alerting")
    assert shown(out)["record"]["incidents"] == []
    events(flink_server, "dep-a", ["again"], "JOB_FAILED")
    code, summary = run(capsys, parked)
    assert summary["folded"] == 0 and summary["pending"] == 3  # a new alert, not a fold


def test_an_unknown_receiver_is_a_config_error_naming_the_option(capsys, parked):
    for action in ("show", "reset"):
        code, out, err = checkpoint(capsys, parked, action, "--receiver", "nobody")
        assert code == 2 and out == ""
        assert err.strip() == (
            "flink-alerts: configuration error: --receiver: no receiver 'nobody' "
            "(configured: hook0)"
        )


def test_a_removed_receiver_with_a_stored_record_can_still_be_shown(capsys, parked):
    parked.write_text(parked.read_text().replace('"hook0"', '"renamed"'))
    code, out, _ = checkpoint(capsys, parked, "show", "--receiver", "hook0")
    assert code == 0 and len(shown(out)["record"]["outbox"]) == 2


def test_a_corrupt_receiver_record_is_named_then_reset(capsys, parked, tmp_path):
    path = tmp_path / "checkpoints" / "receiver.hook0.json"
    path.write_text("# flink-alerts checkpoint version 3\n{broken")
    code, out, err = checkpoint(capsys, parked, "show", "--receiver", "hook0")
    assert code == 1 and "not a flink-alerts record" in err and "checkpoint reset" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    code, out, _ = checkpoint(capsys, parked, "reset", "--receiver", "hook0")
    assert code == 0
    code, out, _ = checkpoint(capsys, parked, "show", "--receiver", "hook0")
    assert code == 0 and shown(out)["record"]["outbox"] == []


def test_exactly_one_record_is_named(capsys, parked):
    for args in ([], ["--target", "a/b", "--record", "alerting"], ["--record", "fleet"]):
        with pytest.raises(SystemExit) as exit:
            main(["checkpoint", "show", "--config", str(parked), *args])
        assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "one of the arguments --target --record --receiver is required" in err
    assert "not allowed with argument" in err and "invalid choice: 'fleet'" in err
