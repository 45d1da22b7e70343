"""The one scrubber: every configured secret, in every form a server may echo it."""

from __future__ import annotations

import json
from urllib.parse import quote

from flink_alerts.credentials import Credentials
from flink_alerts.errors import server_text
from flink_alerts.scrub import SCRUBBER, Scrubber, scrub, url_secrets
from flink_alerts.settings import Settings

SLACK_TOKEN = "xoxb9a8b7c6d5e4f3g2h1"
DING_TOKEN = "dingtoken-5f3a9c"


def settings() -> Settings:
    return Settings(
        receivers=[
            {
                "name": "ding",
                "type": "dingtalk",
                "webhook": f"https://oapi.dingtalk.com/robot/send?access_token={DING_TOKEN}",
                "secret": "SEC-sign/ing+key",
            },
            {"name": "slack", "type": "slack", "webhook": f"https://h.slack/s/T0/B0/{SLACK_TOKEN}"},
            {
                "name": "mail",
                "type": "email",
                "sender": "a@b.c",
                "to": ["d@e.f"],
                "password": "pw-é 9",
            },
            {
                "name": "hook",
                "type": "webhook",
                "url": "https://example.com/in",
                "headers": {"Authorization": "Bearer hdr-token-77"},
            },
        ]
    )


def test_every_configured_secret_is_masked_in_every_echoed_form():
    scrubber = Scrubber()
    scrubber.configure(settings())
    for secret in ["SEC-sign/ing+key", DING_TOKEN, SLACK_TOKEN, "pw-é 9", "Bearer hdr-token-77"]:
        for form in (secret, quote(secret, safe=""), json.dumps(secret)[1:-1]):
            text = scrubber(f"server said: {form}!")
            assert secret not in text and form not in text and "***" in text, text
    assert scrubber("https://example.com/in and example.com") == "*** and example.com"


def test_a_new_configuration_replaces_the_old_secrets_but_credentials_stay():
    scrubber = Scrubber()
    scrubber.configure(settings())
    scrubber.remember("ak-secret-0042", None)
    scrubber.configure(Settings())
    assert scrubber(f"{DING_TOKEN} ak-secret-0042") == f"{DING_TOKEN} ***"


def test_credentials_are_known_to_the_process_scrubber_once_created():
    Credentials("LTAI-id", "ak-secret-1234", "sts-token-5678")
    assert scrub("echo ak-secret-1234 / sts-token-5678") == "echo *** / ***"


def test_signatures_and_url_tokens_are_masked_without_being_configured():
    text = scrub("Signature=ab12cd&sign=Zx%2B9 url?access_token=t0k3n_x")
    assert text == "Signature=***&sign=*** url?access_token=***"


def test_url_secrets_are_the_token_parts_not_the_host_or_short_paths():
    parts = url_secrets(f"https://oapi.dingtalk.com/robot/send?access_token={DING_TOKEN}")
    assert DING_TOKEN in parts and "/robot/send" not in parts and "oapi.dingtalk.com" not in parts
    assert SLACK_TOKEN in url_secrets(f"https://hooks.slack.com/services/T0/B0/{SLACK_TOKEN}")


def test_short_values_are_not_masked_so_the_summary_stays_json():
    scrubber = Scrubber()
    headers = {"X-Debug": "false", "X-Id": "12345"}
    hook = {"name": "h", "type": "webhook", "url": "https://example.com/in", "headers": headers}
    scrubber.configure(Settings(receivers=[hook]))
    line = '{"sent": 12345, "dry_run": false}'
    assert json.loads(scrubber(line)) == {"sent": 12345, "dry_run": False}


def test_server_text_is_one_short_line_and_never_cut_inside_a_secret():
    secret = "sts-token-echoed-by-a-server-0123456789"
    SCRUBBER.remember(secret)
    said = server_text("x" * 280 + secret + "\n\tat line two")
    assert "\n" not in said and len(said) <= 300
    assert secret[:12] not in said  # masked whole before the cut, not halved by it
