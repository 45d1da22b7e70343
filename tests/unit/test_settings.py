import textwrap

import pytest

from flink_alerts.errors import ConfigError
from flink_alerts.settings import (
    Settings,
    load_settings,
    parse_duration,
    parse_rate,
    validate_settings,
)


def write(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_defaults_without_a_file(monkeypatch):
    monkeypatch.delenv("FC_REGION", raising=False)
    settings = load_settings(None)
    assert settings.region == "cn-hangzhou"
    assert settings.api_endpoint == "https://ververica.cn-hangzhou.aliyuncs.com"
    assert settings.checkpoint == "file://./.flink-alerts"
    assert settings.delivery.initial_backoff == 30 and settings.delivery.max_age == 86400


def test_region_from_fc_and_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv("FC_REGION", "cn-shanghai")
    monkeypatch.setenv("FLINK_ALERTS_PAGE_SIZE", "50")
    settings = load_settings(write(tmp_path, "page_size: 100\n"))
    assert settings.region == "cn-shanghai" and settings.page_size == 50


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {
            "page_size": 20,
            "overlap_window": "5m",
            "targets": [{"workspace": "w", "namespace": "n"}],
        },
        {"receivers": [{"name": "c", "type": "console"}], "delivery": {"max_age": "1h"}},
    ],
)
def test_settings_with_and_without_pydantic_settings_agree(raw):
    plain = validate_settings(raw, {})
    with_env = validate_settings(raw, {"FLINK_ALERTS_REGION": plain.region})
    assert type(plain) is Settings and type(with_env) is not Settings
    assert with_env.model_dump() == plain.model_dump()


def test_env_expansion_and_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("DING_URL", "https://oapi.dingtalk.com/robot/send?access_token=t")
    path = write(
        tmp_path,
        """
        receivers:
          - {name: ding, type: dingtalk, webhook: "${DING_URL}", secret: "${DING_SECRET:-}"}
        delivery: {initial_backoff: 1m, max_age: 2h}
        """,
    )
    settings = load_settings(path)
    receiver = settings.receiver("ding")
    assert receiver.webhook.get_secret_value().endswith("access_token=t")
    assert receiver.secret.get_secret_value() == ""
    assert "access_token" not in repr(settings)
    assert settings.delivery.initial_backoff == 60 and settings.delivery.max_age == 7200


@pytest.mark.parametrize(
    ("text", "path", "reason"),
    [
        (
            "receivers:\n  - {name: s, type: slack, webhook: '${NOPE_VAR}'}\n",
            "receivers[0].webhook",
            "NOPE_VAR",
        ),
        ("page_size: 101\n", "page_size", "must be from 1 to 100"),
        ("pagesize: 10\n", "pagesize", "unknown key"),
        ("targets:\n  - {workspace: w}\n", "targets[0].namespace", "required"),
        ("receivers:\n  - {name: s, type: slack}\n", "receivers[0].webhook", "required"),
        ("receivers:\n  - {name: s, type: pager}\n", "receivers[0]", "type"),
        ("routes:\n  - {receivers: [ghost]}\n", "routes[0].receivers", "unknown receiver 'ghost'"),
        (
            "receivers:\n  - {name: c, type: console}\n"
            "routes:\n  - {receivers: [c], routes: [{receivers: [ghost]}]}\n",
            "routes[0].routes[0].receivers",
            "unknown receiver 'ghost'",
        ),
        ("routes:\n  - {repeat_interval: often}\n", "routes[0].repeat_interval", "not a duration"),
        ("routes:\n  - {group_by: [pod]}\n", "routes[0].group_by[0]", "deployment"),
        ("rules:\n  - {match: {message: '('}}\n", "rules[0].match.message", "regular"),
        ("rules:\n  - {match: {severity: info}}\n", "rules[0].match", "sets the severity"),
        ("rules: {rules: [{action: page}]}\n", "rules.rules[0].action", "alert"),
        ("rules: {defaults: maybe}\n", "rules.defaults", "boolean"),
        (
            "silences:\n  - {between: '22:00-22:00', timezone: UTC}\n",
            "silences[0].between",
            "empty window",
        ),
        (
            "silences:\n  - {between: '01:00-02:00', timezone: Mars/Base}\n",
            "silences[0].timezone",
            "unknown time zone",
        ),
        (
            "silences:\n  - {starts_at: '2026-01-01T00:00', ends_at: '2026-01-02T00:00'}\n",
            "silences[0].starts_at",
            "give an offset",
        ),
        (
            "silences:\n  - {starts_at: '2026-01-02T00:00Z', ends_at: '2026-01-01T00:00Z'}\n",
            "silences[0].ends_at",
            "must be after starts_at",
        ),
        ("checkpoint: s3://x\n", "checkpoint", "file://"),
        ("start_from: yesterday\n", "start_from", "not a duration"),
        ("delivery: {max_backoff: soon}\n", "delivery.max_backoff", "not a duration"),
        ("endpoint: ftp://x\n", "endpoint", "https://host"),
        ("region: [\n", "config.yaml", "invalid YAML at line"),
        ("console_url: 'https://x/{dep}'\n", "console_url", "unknown placeholder 'dep'"),
    ],
)
def test_errors_name_the_key(tmp_path, monkeypatch, text, path, reason):
    monkeypatch.delenv("NOPE_VAR", raising=False)
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text))
    assert info.value.path.endswith(path), str(info.value)
    assert reason in str(info.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "nope.yaml")


def test_durations_and_rates():
    assert parse_duration("500ms") == 0.5 and parse_duration("2d") == 172800
    assert parse_rate("20/min") == (20, 60) and parse_rate("1/s") == (1, 1)
    with pytest.raises(ValueError):
        parse_rate("0/min")


def test_rule_errors_name_the_key_as_written(tmp_path):
    for text, path in [
        ("rules:\n  - {match: {message: '('}}\n", "rules[0].match.message"),
        ("rules: {rules: [{match: {message: '('}}]}\n", "rules.rules[0].match.message"),
    ]:
        with pytest.raises(ConfigError) as info:
            load_settings(write(tmp_path, text))
        assert info.value.path == path
