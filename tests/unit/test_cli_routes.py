"""`flink-alerts routes` and `check` over rules, routes and silences (no server needed)."""

import json
from pathlib import Path

import pytest

from flink_alerts.cli import main

CONFIG = """
targets: [{workspace: ws1, namespace: prod}]
receivers:
  - {name: ops, type: console}
  - {name: dev, type: console}
rules:
  - {name: oom, match: {message: OutOfMemory}, severity: critical}
  - {match: {namespace: sandbox}, action: ignore}
routes:
  - match: {namespace: prod}
    receivers: [ops]
    repeat_interval: 30m
    routes:
      - {match: {severity: warning}, receivers: [dev]}
silences:
  - match: {deployment: "etl-*"}
    weekdays: [mon]
    between: "01:00-03:00"
    timezone: Asia/Shanghai
    comment: migration
"""


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    return str(path)


def routes(config, event, *extra):
    return main(["routes", "--config", config, "--event", json.dumps(event), *extra])


def test_routes_names_rule_route_receivers_and_decision(config, capsys):
    event = {"eventName": "JOB_FAILED", "message": "OutOfMemoryError", "namespace": "prod"}
    assert routes(config, {**event, "deploymentId": "d1"}) == 0
    out = capsys.readouterr().out
    assert "rule: oom -> alert, severity critical" in out
    assert "fingerprint: target=ws1/prod|deployment=d1|rule=oom" in out
    assert "route: routes[0] -> receivers ops;" in out and "repeat_interval 1800s" in out
    assert "decision: new" in out


def test_routes_shows_the_silence_at_a_given_time(config, capsys):
    event = {"eventName": "X", "message": "restarting", "namespace": "prod"}
    event["deploymentName"] = "etl-orders"
    assert routes(config, event, "--at", "2026-03-02T01:30:00+08:00") == 0  # a Monday
    out = capsys.readouterr().out
    assert "route: routes[0].routes[0] -> receivers dev" in out
    assert "silenced by silences[0]: mon 01:00-03:00 Asia/Shanghai (migration)" in out
    assert "decision: silenced" in out
    assert routes(config, event, "--at", "2026-03-02T03:00:00+08:00") == 0
    assert "silenced" not in capsys.readouterr().out


def test_routes_for_ignored_and_resolving_events(config, capsys):
    routes(config, {"eventName": "JOB_FAILED", "namespace": "sandbox"})
    assert "rules[1] -> ignore" in capsys.readouterr().out
    routes(config, {"eventName": "X", "message": "from STARTING to RUNNING", "namespace": "prod"})
    assert "recovered -> resolve" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "path"),
    [
        (["--event", "{oops"], "--event: not JSON"),
        (["--event", "{}", "--at", "noon"], "--at"),
        (["--event", "[1]"], "--event: must be a JSON object"),
        (["--event", '"JOB_FAILED"'], "--event: must be a JSON object"),
    ],
)
def test_bad_arguments_exit_2_in_one_line(config, capsys, args, path):
    assert main(["routes", "--config", config, *args]) == 2
    err = capsys.readouterr().err
    assert path in err and len(err.strip().splitlines()) == 1


def test_check_counts_rules_routes_and_silences(config, capsys):
    assert main(["check", "--config", config]) == 0
    assert "6 rules, 2 routes, 1 silences" in capsys.readouterr().out


def test_check_exits_2_with_the_key_path(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(CONFIG.replace('between: "01:00-03:00"', 'between: "3am"'))
    assert main(["check", "--config", str(path)]) == 2
    assert "silences[0].between: not a window" in capsys.readouterr().err


def test_the_readme_worked_example_says_what_the_readme_shows(tmp_path, capsys):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("Worked example:") :]
    config = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    shown = section.split("```\n$ ", 1)[1].split("```", 1)[0]
    command, expected = shown.split("\n", 1)
    path = tmp_path / "config.yaml"
    path.write_text(
        "targets: [{workspace: a1b2c3d4e5, namespace: orders-prod}]\n"
        "receivers: [{name: oncall, type: console}, {name: data, type: console}]\n" + config
    )
    event = command.split("--event '", 1)[1].rstrip("'")
    assert main(["routes", "--config", str(path), "--event", event]) == 0
    assert capsys.readouterr().out == expected
