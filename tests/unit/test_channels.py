"""Channels without a network: payload shapes, size limits, summarising, registry, masking."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from email import message_from_bytes, policy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block

from flink_alerts.channels import make_channel, preview
from flink_alerts.channels.base import FILL, fewer_alerts
from flink_alerts.channels.dingtalk import sign as dingtalk_sign
from flink_alerts.channels.feishu import sign as feishu_sign
from flink_alerts.channels.http import json_body, mask_url, scrub, url_secrets
from flink_alerts.channels.slack import pack_sections
from flink_alerts.errors import ConfigError
from flink_alerts.events import Alert, Batch
from flink_alerts.health import Notice
from flink_alerts.render import Renderer, load_sample_events
from flink_alerts.self_monitoring import notice_batch
from flink_alerts.settings import (
    ConsoleReceiver,
    DingTalkReceiver,
    EmailReceiver,
    FeishuReceiver,
    SlackReceiver,
    WebhookReceiver,
    WeComReceiver,
)
from tests.factories import failure_batch

TOKEN = "0123456789abcdef0123456789abcdef"
STACK = "\n".join(
    ["org.apache.flink.runtime.JobException: Recovery is suppressed by NoRestartBackoff"]
    + [f"\tat org.apache.flink.runtime.scheduler.Foo.method{i}(Foo.java:{i})" for i in range(80)]
    + ["Caused by: java.lang.RuntimeException: 写入失败 [x](http://evil) @all # h <font>"]
)


def long_message(chars: int = 5_000) -> str:
    return (STACK * (chars // len(STACK) + 1))[:chars]


def make_batch(count: int, message: str = "boom", *, test: bool = False) -> Batch:
    return failure_batch([message] * count, test=test)


RECEIVERS = {
    "dingtalk": DingTalkReceiver(
        name="ding",
        type="dingtalk",
        webhook=f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}",
        at_mobiles=["13800000000"],
    ),
    "slack": SlackReceiver(
        name="slack", type="slack", webhook=f"https://hooks.slack.com/services/T/B/{TOKEN}"
    ),
    "email": EmailReceiver(
        name="mail", type="email", sender="alerts@example.com", to=["a@example.com"]
    ),
    "feishu": FeishuReceiver(
        name="fs", type="feishu", webhook=f"https://open.feishu.cn/open-apis/bot/v2/hook/{TOKEN}"
    ),
    "lark": FeishuReceiver(
        name="lark",
        type="lark",
        webhook=f"https://open.larksuite.com/open-apis/bot/v2/hook/{TOKEN}",
    ),
    "wecom": WeComReceiver(
        name="wc",
        type="wecom",
        webhook=f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={TOKEN}",
    ),
    "webhook": WebhookReceiver(
        name="hook",
        type="webhook",
        url="https://hooks.example.com/in",
        headers={"Authorization": "Bearer x"},
    ),
    "console": ConsoleReceiver(name="con", type="console"),
}


@pytest.fixture
def renderer() -> Renderer:
    return Renderer()


def build_one(kind: str, batch: Batch, renderer: Renderer, **changes):
    config = RECEIVERS[kind].model_copy(update=changes)
    messages = make_channel(config, renderer).build(batch)
    assert len(messages) == 1
    assert messages[0].alert_keys == tuple(alert.key for alert in batch.alerts)
    return messages[0]


# --- registry ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(RECEIVERS))
def test_make_channel_and_preview_for_every_type(kind, renderer):
    channel = make_channel(RECEIVERS[kind], renderer, timeout_s=3)
    assert channel.timeout_s == 3 and channel.name == RECEIVERS[kind].name
    texts = preview(RECEIVERS[kind], renderer, make_batch(2, long_message(800)))
    assert texts and "deployment-0" in texts[0]


def test_lark_is_feishu_and_rates(renderer):
    assert make_channel(RECEIVERS["lark"], renderer).type == "feishu"
    assert make_channel(RECEIVERS["dingtalk"], renderer).default_rate == (20, 60.0)
    assert make_channel(RECEIVERS["wecom"], renderer).default_rate == (20, 60.0)
    assert make_channel(RECEIVERS["slack"], renderer).default_rate == (1, 1.0)


def test_unknown_type(renderer):
    class Odd:
        type = "pager"

    with pytest.raises(ConfigError, match="pager"):
        make_channel(Odd(), renderer)


# --- DingTalk ----------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 10, 500])
@pytest.mark.parametrize("msgtype", ["markdown", "text", "actionCard"])
def test_dingtalk_payload_stays_under_20000_bytes(count, msgtype, renderer):
    message = build_one("dingtalk", make_batch(count, long_message()), renderer, msgtype=msgtype)
    assert len(json_body(message.payload)) <= 20_000
    body = message.payload[msgtype]
    text = body.get("text") or body.get("content")
    assert "deployment-0" in text
    if count > 1:
        assert re.search(r"and \d+ more events", text) or "deployment-9" in text


def test_dingtalk_500_events_are_summarised(renderer):
    message = build_one("dingtalk", make_batch(500, long_message()), renderer)
    text = message.payload["markdown"]["text"]
    shown = len(re.findall(r"^### ", text, flags=re.M))
    assert 1 <= shown < 500
    assert f"and {500 - shown} more events" in text
    assert len(message.alert_keys) == 500


def test_dingtalk_mentions_appear_in_text(renderer):
    message = build_one("dingtalk", make_batch(1), renderer, at_user_ids=["user42"], at_all=True)
    payload = message.payload
    assert payload["at"] == {"atMobiles": ["13800000000"], "atUserIds": ["user42"], "isAtAll": True}
    assert (
        "@13800000000" in payload["markdown"]["text"] and "@user42" in payload["markdown"]["text"]
    )


def test_dingtalk_markdown_injection_is_neutralised(renderer):
    hostile = (
        "x [click](http://evil.example) ![i](http://evil.example/i.png) @all\n"
        "# big\n<font color=red>r</font>"
    )
    message = build_one("dingtalk", make_batch(1, hostile), renderer, at_mobiles=[])
    text = message.payload["markdown"]["text"]
    assert "evil.example" in text
    assert not re.search(r"\[[^\]]*\]\(http://evil", text)
    assert "@all" not in text and "<font" not in text
    assert not re.search(r"^#+ big", text, flags=re.M)
    headings = re.findall(r"^#+ .*$", text, flags=re.M)
    assert headings == ["### 🔴 deployment-0"]


def test_dingtalk_action_card_has_console_button(renderer):
    message = build_one("dingtalk", make_batch(2), renderer, msgtype="actionCard")
    card = message.payload["actionCard"]
    assert card["singleURL"].endswith("dep-0") and card["title"] and card["text"]


def test_dingtalk_sign_matches_documented_algorithm():
    # Computed independently: base64(HMAC-SHA256(key=secret, msg=f"{ts}\n{secret}")), URL-encoded.
    import base64
    import hashlib
    import hmac
    from urllib.parse import quote_plus

    secret, ts = "SEC0123456789", 1714504365000
    expected = base64.b64encode(
        hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
    )
    assert dingtalk_sign(secret, ts) == quote_plus(expected)


def test_feishu_sign_is_keyed_by_timestamp_and_secret():
    import base64
    import hashlib
    import hmac

    expected = hmac.new(b"1714504365\nsecret", b"", hashlib.sha256).digest()
    assert feishu_sign("secret", 1714504365) == base64.b64encode(expected).decode()


# --- Slack -------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 10, 500])
def test_slack_blocks_pass_block_kit_validation(count, renderer):
    payload = build_one("slack", make_batch(count, long_message()), renderer).payload
    blocks = payload["blocks"]
    assert 1 < len(blocks) <= 50
    for raw in blocks:
        block = Block.parse(raw)
        assert block is not None
        block.validate_json()  # raises SlackObjectFormationError when a limit is broken
        text = raw["text"]["text"]
        assert len(text) <= (150 if raw["type"] == "header" else 3000)
    assert blocks[0]["type"] == "header"
    assert payload["text"] and len(payload["text"]) <= 40_000
    assert all(block["text"]["text"].count("```") % 2 == 0 for block in blocks[1:])
    body = "\n".join(block["text"]["text"] for block in blocks[1:])
    if count == 500:
        assert re.search(r"and \d+ more events", body)


def test_slack_escapes_mentions_and_links(renderer):
    hostile = "<!channel> <@U123> <http://evil|click> & co"
    payload = build_one("slack", make_batch(1, hostile), renderer).payload
    body = "\n".join(block["text"]["text"] for block in payload["blocks"][1:])
    assert "<!channel>" not in body and "<@U123>" not in body and "<http://evil" not in body
    assert "&lt;!channel&gt;" in body and "&amp; co" in body


def test_pack_sections_respects_limit_and_code_fences():
    text = (
        "\n\n".join(["para " * 100] * 10) + "\n\n```\n" + "\n".join(["line " * 50] * 40) + "\n```"
    )
    sections = pack_sections(text, limit=3000)
    assert all(len(section) <= 3000 for section in sections)
    assert all(section.count("```") % 2 == 0 for section in sections)
    assert "".join(sections).replace("\n", "").replace("```", "").replace(" ", "") == text.replace(
        "\n", ""
    ).replace("```", "").replace(" ", "")


# --- WeCom, Feishu -----------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 10, 500])
def test_wecom_content_at_most_4096_bytes(count, renderer):
    payload = build_one("wecom", make_batch(count, long_message()), renderer).payload
    content = payload["markdown"]["content"]
    assert len(content.encode("utf-8")) <= 4096
    assert "deployment-0" in content


@pytest.mark.parametrize("count", [1, 10, 500])
def test_feishu_card_stays_under_20000_bytes(count, renderer):
    payload = build_one("feishu", make_batch(count, long_message()), renderer).payload
    assert payload["msg_type"] == "interactive"
    assert len(json_body(payload)) <= 20_000
    content = payload["card"]["elements"][0]["text"]["content"]
    assert "deployment-0" in content and "<font" not in content and "@all" not in content


# --- email, webhook, console -------------------------------------------------------------------


def test_email_is_multipart_alternative_plain_then_html(renderer):
    message = build_one("email", make_batch(2, "失败 <script>alert(1)</script>"), renderer)
    msg = message.payload
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    for header in ("Subject", "From", "To", "Date", "Message-ID"):
        assert msg[header]
    html = parts[1].get_content()
    assert "<script>alert" not in html and "&lt;script&gt;" in html and "失败" in html
    again = message_from_bytes(msg.as_bytes(), policy=policy.default)
    assert again["Subject"] == msg["Subject"]
    preview_text = message.preview()
    assert "失败" in preview_text and "text/html" in preview_text and "Subject:" in preview_text


def test_email_summarises_beyond_200_events(renderer):
    msg = build_one("email", make_batch(250), renderer).payload
    html = msg.get_body(("html",)).get_content()
    assert "deployment-199" in html and "deployment-200" not in html
    assert "and 50 more events" in html


def test_email_cc_and_subject_without_newlines(renderer):
    batch = make_batch(1)
    alert = batch.alerts[0]
    odd = Alert(event=alert.event, deployment_name="a\r\nBcc: victim@example.com")
    batch = Batch(receiver="r", target=batch.target, alerts=(odd,))
    msg = build_one("email", batch, renderer, cc=["c@example.com"]).payload
    assert msg["Cc"] == "c@example.com"
    assert "\n" not in msg["Subject"] and msg["Bcc"] is None


def test_webhook_body_is_the_rendered_json(renderer):
    message = build_one("webhook", make_batch(3, 'quote " and \\ and 中文'), renderer)
    payload = message.payload
    assert payload["total"] == 3 and len(payload["alerts"]) == 3
    assert payload["alerts"][0]["message"] == 'quote " and \\ and 中文'
    assert json.loads(message.preview()) == payload


def test_webhook_template_that_is_not_json_is_a_config_error(renderer, tmp_path):
    path = tmp_path / "bad.json.j2"
    path.write_text('{"m": "{{ receiver }}"}')
    with pytest.raises(ConfigError, match="valid JSON"):
        build_one("webhook", make_batch(1), renderer, template=str(path))


def test_console_prints(renderer, capsys):
    channel = make_channel(RECEIVERS["console"], renderer)
    message = channel.build(make_batch(2, "boom"))[0]
    assert channel.send(message) == "printed"
    out = capsys.readouterr().out
    assert "deployment-0" in out and "deployment-1" in out


def test_custom_template_path_per_receiver(renderer, tmp_path):
    path = tmp_path / "mine.md.j2"
    path.write_text("custom {{ counts.total }} {{ alerts[0].message }}")
    message = build_one("wecom", make_batch(2, "[x](y)"), renderer, template=str(path))
    assert message.payload["markdown"]["content"] == "custom 2 ［x］(y)"


def test_sample_events_render_for_every_receiver(renderer):
    from flink_alerts.render import sample_batch

    batch = sample_batch("r", load_sample_events(), console_url="https://c.example/{deployment_id}")
    for config in RECEIVERS.values():
        assert preview(config, renderer, batch)


# --- shared helpers ----------------------------------------------------------------------------


def test_mask_url_and_url_secrets():
    url = f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}"
    assert mask_url(url) == "https://oapi.dingtalk.com"
    assert mask_url("http://127.0.0.1:8080/x/y?k=v") == "http://127.0.0.1:8080"
    assert TOKEN in url_secrets(url)
    hook = f"https://hooks.slack.com/services/T0/B0/{TOKEN}"
    assert scrub(f"bad {hook} and {TOKEN}", url_secrets(hook)) == "bad *** and ***"


@given(
    fixed=st.floats(0.0, 0.5),
    per_alert=st.floats(0.001, 1.0),
    shown=st.integers(1, 1_000),
)
def test_fewer_alerts_solves_a_linear_size_from_two_measures(fixed, per_alert, shown):
    def load(count: int) -> float:
        return fixed + per_alert * count

    first = fewer_alerts([(shown, load(shown))])
    assert 0 <= first < shown
    if load(first) <= 1.0 or first == 0:
        return
    second = fewer_alerts([(shown, load(shown)), (first, load(first))])
    assert 0 <= second < first
    assert load(second) <= FILL + 1e-9 or second == 0


def test_fewer_alerts_from_one_measure_is_proportional():
    assert fewer_alerts([(50, 5.0)]) == int(50 * FILL / 5.0)
    assert fewer_alerts([(1, 3.0)]) == 0


class CountingDingTalk(make_channel(RECEIVERS["dingtalk"], Renderer()).__class__):
    renders = 0

    def payload(self, context):
        self.renders += 1
        return super().payload(context)


def test_500_alerts_with_10_kb_traces_take_at_most_two_renders(renderer):
    channel = CountingDingTalk(RECEIVERS["dingtalk"], renderer)
    payload = channel.build(make_batch(500, long_message(10_000)))[0].payload
    assert channel.renders <= 2
    assert len(json_body(payload)) <= 20_000
    text = payload["markdown"]["text"]
    shown = len(re.findall(r"^### ", text, flags=re.M))
    assert shown >= 5 and f"and {500 - shown} more events" in text
    assert len(json_body(payload)) > 20_000 * 0.6  # the estimate does not waste the room


@pytest.mark.parametrize("count", [1, 40, 500])
def test_email_parts_stay_small_whatever_the_batch(count, renderer):
    msg = build_one("email", make_batch(count, long_message(10_000)), renderer).payload
    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    assert len(html.encode()) <= 100_000 and len(text.encode()) <= 50_000
    assert "deployment-0" in html and "more line" in html and "more line" in text
    shown = len(re.findall(r'<div class="d">deployment-\d+</div>', html))
    assert shown >= min(count, 20)
    if shown < count:
        assert f"and {count - shown} more events" in html and html.rstrip().endswith("</html>")


@pytest.mark.parametrize(
    ("kind", "limit"), [("dingtalk", 20_000), ("feishu", 20_000), ("wecom", 4096)]
)
def test_full_messages_in_a_custom_template_are_fitted_by_size(kind, limit, renderer, tmp_path):
    path = tmp_path / "full.md.j2"
    path.write_text(
        "{% for alert in alerts %}{{ alert.deployment_name }}\n{{ alert.message }}\n\n{% endfor %}"
        "{{ omitted_text }}"
    )
    payload = build_one(kind, make_batch(200, long_message()), renderer, template=str(path)).payload
    size = (
        len(payload["markdown"]["content"].encode()) if kind == "wecom" else len(json_body(payload))
    )
    assert size <= limit
    text = {
        "dingtalk": lambda: payload["markdown"]["text"],
        "feishu": lambda: payload["card"]["elements"][0]["text"]["content"],
        "wecom": lambda: payload["markdown"]["content"],
    }[kind]()
    shown = len(re.findall(r"^deployment-\d+$", text, flags=re.M))
    assert 1 <= shown < 200 and f"and {200 - shown} more events" in text
    # Fitting is tight: one more alert would not have fit.
    assert size > limit * 0.6


@pytest.mark.parametrize("kind", ["dingtalk", "feishu", "wecom", "slack"])
def test_a_huge_custom_template_is_cut_to_size(kind, renderer, tmp_path):
    path = tmp_path / "huge.j2"
    path.write_text("{% for i in range(30000) %}中文 {{ i }}\n\n{% endfor %}")
    payload = build_one(kind, make_batch(3), renderer, template=str(path)).payload
    if kind == "wecom":
        assert len(payload["markdown"]["content"].encode()) <= 4096
    elif kind == "slack":
        assert len(payload["blocks"]) <= 50
    else:
        assert len(json_body(payload)) <= 20_000


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    count=st.integers(1, 400),
    lines=st.integers(1, 300),
    line=st.text(st.characters(codec="utf-8"), min_size=0, max_size=200),
)
def test_every_batch_fits_its_receiver(count, lines, line, renderer):
    batch = make_batch(count, "\n".join([f"java.lang.IllegalStateException: {line}"] * lines))
    email = build_one("email", batch, renderer).payload
    assert len(email.get_body(("html",)).get_content().encode()) <= 100_000
    assert len(email.get_body(("plain",)).get_content().encode()) <= 50_000
    for kind in ("dingtalk", "feishu"):
        assert len(json_body(build_one(kind, batch, renderer).payload)) <= 20_000
    wecom = build_one("wecom", batch, renderer).payload
    assert len(wecom["markdown"]["content"].encode()) <= 4096
    assert len(build_one("slack", batch, renderer).payload["blocks"]) <= 50


@pytest.mark.parametrize("kind", ["dingtalk", "slack", "email", "console"])
@pytest.mark.parametrize("kind_of_notice", ["degraded", "recovered"])
def test_bridge_notices_are_not_titled_unknown_deployment(kind, kind_of_notice, renderer):
    notice = Notice(kind_of_notice, ("ws/ns: 3 failed runs in a row",))
    batch = notice_batch(notice, RECEIVERS[kind].name, datetime(2026, 5, 1, tzinfo=timezone.utc))
    (text, *_) = preview(RECEIVERS[kind], renderer, batch)
    assert "unknown deployment" not in text and "3 failed runs in a row" in text
