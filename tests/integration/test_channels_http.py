"""HTTP channels against local fakes of DingTalk, Feishu, WeCom, Slack and a generic webhook.

The fakes check what the real services check (signatures recomputed from the secret, tokens,
size limits, keywords) and answer with the services' error codes, so a wrong signature or an
oversized body fails here the way it would in production.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from slack_sdk.models.blocks import Block
from werkzeug import Request, Response

from flink_alerts.channels import deliver, make_channel
from flink_alerts.channels.base import Message
from flink_alerts.errors import DeliveryError
from flink_alerts.events import Batch
from flink_alerts.render import Renderer
from flink_alerts.settings import (
    DingTalkReceiver,
    FeishuReceiver,
    SlackReceiver,
    WebhookReceiver,
    WeComReceiver,
)
from tests.factories import failure_batch

TOKEN = "tok3n5ecretvalue0123456789abcdef"
SECRET = "SECa1b2c3d4e5f60718293a4b5c6d7e8f"
HOSTILE = "x [click](http://evil.example) @all\n# big\n<font color=red>r</font>"


def make_batch(count: int = 1, message: str = "boom") -> Batch:
    return failure_batch([message] * count)


def long_batch(count: int) -> Batch:
    trace = "\n".join(f"\tat com.example.Foo.bar{i}(Foo.java:{i}) 中文" for i in range(400))
    return make_batch(count, ("java.lang.IllegalStateException: 失败\n" + trace)[:5_000])


def reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = data if isinstance(data, str) else json.dumps(data)
    kind = "text/plain" if isinstance(data, str) else "application/json"
    return Response(body, status=status, headers=headers, content_type=kind)


@pytest.fixture
def server() -> Iterator[HTTPServer]:
    httpserver = HTTPServer(host="127.0.0.1", port=0)
    httpserver.start()
    yield httpserver
    httpserver.clear()
    if httpserver.is_running():
        httpserver.stop()


@pytest.fixture
def renderer() -> Renderer:
    return Renderer()


def send_error(channel: Any, message: Message) -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        channel.send(message)
    return info.value


def assert_no_secrets(error: DeliveryError, *secrets: str) -> None:
    text = str(error)
    for secret in (TOKEN, SECRET, *secrets):
        assert secret not in text, text


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- DingTalk ----------------------------------------------------------------------------------


class DingTalkFake:
    """Checks access_token, the HMAC signature and the 20,000-byte limit like the robot API."""

    def __init__(self, secret: str | None = SECRET, keyword: str | None = None) -> None:
        self.secret = secret
        self.keyword = keyword
        self.forced: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []

    def __call__(self, request: Request) -> Response:
        if request.args.get("access_token") != TOKEN:
            return reply({"errcode": 300001, "errmsg": "token is not exist"})
        if self.secret is not None and not self._signed(request):
            return reply({"errcode": 310000, "errmsg": "sign not match, more: [...]"})
        body = request.get_data()
        if len(body) > 20_000:
            return reply({"errcode": 460101, "errmsg": "message too long, exceed 20000 bytes"})
        data = json.loads(body)
        if self.keyword and self.keyword not in body.decode():
            return reply({"errcode": 310000, "errmsg": "keywords not in content"})
        if self.forced:
            return reply(self.forced.pop(0))
        self._check_shape(data)
        self.received.append(data)
        return reply({"errcode": 0, "errmsg": "ok"})

    def _signed(self, request: Request) -> bool:
        timestamp, given = request.args.get("timestamp", ""), request.args.get("sign", "")
        if not timestamp.isdigit() or abs(time.time() * 1000 - int(timestamp)) > 3_600_000:
            return False
        key = self.secret.encode()
        digest = hmac.new(key, f"{timestamp}\n{self.secret}".encode(), hashlib.sha256).digest()
        # werkzeug has URL-decoded the query once, as DingTalk does.
        return hmac.compare_digest(given, base64.b64encode(digest).decode())

    @staticmethod
    def _check_shape(data: dict[str, Any]) -> None:
        msgtype = data["msgtype"]
        if msgtype == "markdown":
            assert data["markdown"]["title"] and data["markdown"]["text"]
        elif msgtype == "text":
            assert data["text"]["content"]
        else:
            assert data["actionCard"]["singleURL"].startswith("https://")


@pytest.fixture
def dingtalk(server: HTTPServer) -> DingTalkFake:
    fake = DingTalkFake()
    server.expect_request("/robot/send", method="POST").respond_with_handler(fake)
    return fake


def ding_config(server: HTTPServer, **changes: Any) -> DingTalkReceiver:
    values = {
        "name": "ding",
        "type": "dingtalk",
        "webhook": server.url_for(f"/robot/send?access_token={TOKEN}"),
        "secret": SECRET,
    }
    return DingTalkReceiver(**{**values, **changes})


@pytest.mark.parametrize("count", [1, 10, 500])
@pytest.mark.parametrize("msgtype", ["markdown", "text", "actionCard"])
def test_dingtalk_signed_delivery_of_any_size(server, dingtalk, renderer, count, msgtype):
    answers = deliver(ding_config(server, msgtype=msgtype), renderer, long_batch(count))
    assert answers == ["ok"]
    assert dingtalk.received[0]["msgtype"] == msgtype


def test_dingtalk_unsigned_robot(server, renderer):
    fake = DingTalkFake(secret=None)
    server.expect_request("/robot/send").respond_with_handler(fake)
    assert deliver(ding_config(server, secret=None), renderer, make_batch()) == ["ok"]


def test_dingtalk_wrong_secret_is_permanent(server, dingtalk, renderer):
    wrong = "SECwrongwrongwrongwrong"
    channel = make_channel(ding_config(server, secret=wrong), renderer)
    error = send_error(channel, channel.build(make_batch())[0])
    assert not error.retryable and "310000" in str(error) and "signing secret" in str(error)
    assert_no_secrets(error, wrong)


def test_dingtalk_missing_keyword_is_permanent(server, renderer):
    fake = DingTalkFake(keyword="FlinkAlarm")
    server.expect_request("/robot/send").respond_with_handler(fake)
    channel = make_channel(ding_config(server), renderer)
    error = send_error(channel, channel.build(make_batch())[0])
    assert not error.retryable and "310000" in str(error)


def test_dingtalk_bad_token_is_permanent(server, dingtalk, renderer):
    url = server.url_for("/robot/send?access_token=not-the-token-at-all")
    channel = make_channel(ding_config(server, webhook=url), renderer)
    error = send_error(channel, channel.build(make_batch())[0])
    assert not error.retryable and "300001" in str(error)
    assert_no_secrets(error, "not-the-token-at-all")


def test_dingtalk_throttled_is_retryable_with_retry_after(server, dingtalk, renderer):
    dingtalk.forced.append(
        {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}
    )
    channel = make_channel(ding_config(server), renderer)
    error = send_error(channel, channel.build(make_batch())[0])
    assert error.retryable and error.retry_after >= 600  # the robot is blocked for 10 minutes
    assert_no_secrets(error)


@pytest.mark.parametrize(("code", "retryable"), [(300005, False), (-1, True), (400013, False)])
def test_dingtalk_other_codes(server, dingtalk, renderer, code, retryable):
    dingtalk.forced.append({"errcode": code, "errmsg": "something"})
    channel = make_channel(ding_config(server), renderer)
    assert send_error(channel, channel.build(make_batch())[0]).retryable is retryable


def test_dingtalk_fake_rejects_oversized_bodies(server, dingtalk, renderer):
    """The fake enforces the limit, so the size tests above mean something."""
    channel = make_channel(ding_config(server), renderer)
    huge = Message("ding", {"msgtype": "text", "text": {"content": "x" * 25_000}}, ("k",))
    error = send_error(channel, huge)
    assert not error.retryable and "460101" in str(error)


def test_dingtalk_http_5xx_is_retryable(server, renderer):
    server.expect_request("/robot/send").respond_with_data("busy", status=502)
    channel = make_channel(ding_config(server), renderer)
    error = send_error(channel, channel.build(make_batch())[0])
    assert error.retryable and "HTTP 502" in str(error)
    assert_no_secrets(error)


def test_dingtalk_markdown_injection_arrives_neutralised(server, dingtalk, renderer):
    deliver(ding_config(server, at_mobiles=[]), renderer, make_batch(1, HOSTILE))
    text = dingtalk.received[0]["markdown"]["text"]
    assert "](http://evil" not in text and "@all" not in text and "<font" not in text
    assert "\n# big" not in text and dingtalk.received[0]["at"]["isAtAll"] is False


# --- Feishu / Lark -----------------------------------------------------------------------------


class FeishuFake:
    def __init__(self, secret: str | None = SECRET, keyword: str | None = None) -> None:
        self.secret = secret
        self.keyword = keyword
        self.forced: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []

    def __call__(self, request: Request) -> Response:
        if not request.path.endswith(f"/hook/{TOKEN}"):
            return reply(
                {"code": 19001, "msg": "param invalid: incoming webhook access token invalid"}
            )
        body = request.get_data()
        if len(body) > 20_000:
            return reply({"code": 19002, "msg": "params error, msg too large"})
        data = json.loads(body)
        if self.secret is not None and not self._signed(data):
            return reply(
                {"code": 19021, "msg": "sign match fail or timestamp is not within one hour"}
            )
        if self.keyword and self.keyword not in body.decode():
            return reply({"code": 19024, "msg": "Key Words Not Found"})
        if self.forced:
            return reply(self.forced.pop(0))
        assert data["msg_type"] == "interactive" and data["card"]["elements"]
        self.received.append(data)
        return reply({"code": 0, "data": {}, "msg": "success"})

    def _signed(self, data: dict[str, Any]) -> bool:
        timestamp = str(data.get("timestamp", ""))
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 3600:
            return False
        key = f"{timestamp}\n{self.secret}".encode()
        expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
        return hmac.compare_digest(str(data.get("sign", "")), expected)


@pytest.fixture
def feishu(server: HTTPServer) -> FeishuFake:
    fake = FeishuFake()
    server.expect_request(f"/open-apis/bot/v2/hook/{TOKEN}").respond_with_handler(fake)
    return fake


def feishu_config(server: HTTPServer, **changes: Any) -> FeishuReceiver:
    values = {
        "name": "fs",
        "type": "feishu",
        "webhook": server.url_for(f"/open-apis/bot/v2/hook/{TOKEN}"),
        "secret": SECRET,
    }
    return FeishuReceiver(**{**values, **changes})


@pytest.mark.parametrize("count", [1, 10, 500])
@pytest.mark.parametrize("kind", ["feishu", "lark"])
def test_feishu_signed_delivery_of_any_size(server, feishu, renderer, count, kind):
    assert deliver(feishu_config(server, type=kind), renderer, long_batch(count)) == ["success"]
    assert "deployment-0" in json.dumps(feishu.received[0], ensure_ascii=False)


def test_feishu_wrong_secret_is_permanent(server, feishu, renderer):
    channel = make_channel(feishu_config(server, secret="wrong-secret-value"), renderer)
    error = send_error(channel, channel.build(make_batch())[0])
    assert not error.retryable and "19021" in str(error)
    assert_no_secrets(error, "wrong-secret-value")


def test_feishu_keyword_mismatch_is_permanent(server, renderer):
    fake = FeishuFake(keyword="告警")
    server.expect_request(f"/open-apis/bot/v2/hook/{TOKEN}").respond_with_handler(fake)
    channel = make_channel(feishu_config(server), renderer)
    error = send_error(channel, channel.build(make_batch())[0])
    assert not error.retryable and "19024" in str(error) and "keyword" in str(error)


@pytest.mark.parametrize("code", [9499, 11232])
def test_feishu_frequency_limit_is_retryable(server, feishu, renderer, code):
    feishu.forced.append({"code": code, "msg": "frequency limited psm"})
    channel = make_channel(feishu_config(server), renderer)
    error = send_error(channel, channel.build(make_batch())[0])
    assert error.retryable and error.retry_after


def test_feishu_old_status_code_answer(server, feishu, renderer):
    feishu.forced.append({"StatusCode": 0, "StatusMessage": "success", "Extra": None})
    assert deliver(feishu_config(server), renderer, make_batch()) == ["success"]


def test_feishu_bad_token_is_permanent(server, feishu, renderer):
    config = feishu_config(
        server, webhook=server.url_for("/open-apis/bot/v2/hook/zzzzzzzzzzzzzzzzzz")
    )
    server.expect_request("/open-apis/bot/v2/hook/zzzzzzzzzzzzzzzzzz").respond_with_handler(feishu)
    channel = make_channel(config, renderer)
    error = send_error(channel, channel.build(make_batch())[0])
    assert not error.retryable and "19001" in str(error)
    assert_no_secrets(error, "zzzzzzzzzzzzzzzzzz")


def test_feishu_injection_arrives_neutralised(server, feishu, renderer):
    deliver(feishu_config(server), renderer, make_batch(1, HOSTILE + ' <at user_id="all">'))
    content = feishu.received[0]["card"]["elements"][0]["text"]["content"]
    assert "<at" not in content and "](http://evil" not in content and "<font" not in content


# --- WeCom -------------------------------------------------------------------------------------


class WeComFake:
    def __init__(self) -> None:
        self.forced: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []

    def __call__(self, request: Request) -> Response:
        if request.args.get("key") != TOKEN:
            return reply({"errcode": 93000, "errmsg": "invalid webhook url, hint: [..]"})
        data = json.loads(request.get_data())
        content = data.get("markdown", {}).get("content", "")
        if len(content.encode("utf-8")) > 4096:
            return reply({"errcode": 40058, "errmsg": "markdown.content exceed max length 4096"})
        if self.forced:
            return reply(self.forced.pop(0))
        self.received.append(data)
        return reply({"errcode": 0, "errmsg": "ok"})


@pytest.fixture
def wecom(server: HTTPServer) -> WeComFake:
    fake = WeComFake()
    server.expect_request("/cgi-bin/webhook/send").respond_with_handler(fake)
    return fake


def wecom_config(server: HTTPServer, key: str = TOKEN) -> WeComReceiver:
    url = server.url_for(f"/cgi-bin/webhook/send?key={key}")
    return WeComReceiver(name="wc", type="wecom", webhook=url)


@pytest.mark.parametrize("count", [1, 10, 500])
def test_wecom_delivery_of_any_size(server, wecom, renderer, count):
    assert deliver(wecom_config(server), renderer, long_batch(count)) == ["ok"]


def test_wecom_fake_rejects_long_markdown(server, wecom, renderer):
    channel = make_channel(wecom_config(server), renderer)
    big = Message("wc", {"msgtype": "markdown", "markdown": {"content": "中" * 1400}}, ("k",))
    error = send_error(channel, big)
    assert not error.retryable and "40058" in str(error)


def test_wecom_rate_limit_is_retryable(server, wecom, renderer):
    wecom.forced.append({"errcode": 45009, "errmsg": "api freq out of limit"})
    channel = make_channel(wecom_config(server), renderer)
    error = send_error(channel, channel.build(make_batch())[0])
    assert error.retryable and error.retry_after == 60


def test_wecom_invalid_key_is_permanent(server, wecom, renderer):
    channel = make_channel(wecom_config(server, key="wrong-key-0000000000"), renderer)
    error = send_error(channel, channel.build(make_batch())[0])
    assert not error.retryable and "93000" in str(error)
    assert_no_secrets(error, "wrong-key-0000000000")


# --- Slack -------------------------------------------------------------------------------------


def slack_config(server: HTTPServer) -> SlackReceiver:
    url = server.url_for(f"/services/T000/B000/{TOKEN}")
    return SlackReceiver(name="slack", type="slack", webhook=url)


def slack_fake(received: list[dict[str, Any]]) -> Callable[[Request], Response]:
    def handle(request: Request) -> Response:
        if not request.path.endswith(TOKEN):
            return reply("no_service", 404)
        data = json.loads(request.get_data())
        if not data.get("text"):
            return reply("missing_text_or_fallback_or_attachments", 400)
        if len(data.get("blocks", [])) > 50:
            return reply("invalid_blocks", 400)
        for block in data.get("blocks", []):
            Block.parse(block).validate_json()
        received.append(data)
        return reply("ok")

    return handle


@pytest.mark.parametrize("count", [1, 10, 500])
def test_slack_delivery_of_any_size(server, renderer, count):
    received: list[dict[str, Any]] = []
    server.expect_request(f"/services/T000/B000/{TOKEN}").respond_with_handler(slack_fake(received))
    assert deliver(slack_config(server), renderer, long_batch(count)) == ["ok"]
    assert received and received[0]["blocks"][0]["type"] == "header"


def test_slack_429_is_retryable_with_retry_after(server, renderer):
    server.expect_request(f"/services/T000/B000/{TOKEN}").respond_with_response(
        reply("rate_limited", 429, {"Retry-After": "7"})
    )
    channel = make_channel(slack_config(server), renderer)
    error = send_error(channel, channel.build(make_batch())[0])
    assert error.retryable and error.retry_after == 7
    assert_no_secrets(error)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (404, "channel_not_found"),
        (400, "invalid_payload"),
        (403, "action_prohibited"),
        (410, "channel_is_archived"),
    ],
)
def test_slack_4xx_is_permanent(server, renderer, status, body):
    server.expect_request(f"/services/T000/B000/{TOKEN}").respond_with_data(body, status=status)
    channel = make_channel(slack_config(server), renderer)
    error = send_error(channel, channel.build(make_batch())[0])
    assert not error.retryable and body in str(error) and str(status) in str(error)
    assert_no_secrets(error)


def test_slack_500_is_retryable(server, renderer):
    server.expect_request(f"/services/T000/B000/{TOKEN}").respond_with_data("oops", status=500)
    channel = make_channel(slack_config(server), renderer)
    assert send_error(channel, channel.build(make_batch())[0]).retryable


# --- generic webhook ---------------------------------------------------------------------------


def webhook_config(server: HTTPServer) -> WebhookReceiver:
    return WebhookReceiver(
        name="hook",
        type="webhook",
        url=server.url_for(f"/in?token={TOKEN}"),
        headers={"Authorization": f"Bearer {SECRET}", "X-Env": "prod"},
    )


def test_webhook_posts_rendered_json_with_headers(server, renderer):
    received: list[Request] = []

    def handle(request: Request) -> Response:
        received.append(request)
        return Response(status=202)

    server.expect_request("/in").respond_with_handler(handle)
    assert deliver(webhook_config(server), renderer, make_batch(2, "中文")) == ["HTTP 202"]
    request = received[0]
    assert request.headers["Authorization"] == f"Bearer {SECRET}"
    assert request.headers["X-Env"] == "prod"
    body = json.loads(request.get_data())
    assert body["total"] == 2 and body["alerts"][0]["message"] == "中文"


@pytest.mark.parametrize(
    ("status", "retryable"), [(429, True), (503, True), (400, False), (401, False)]
)
def test_webhook_status_classification(server, renderer, status, retryable):
    # A receiver that echoes the Authorization header back must not leak it into our errors.
    server.expect_request("/in").respond_with_data(f"denied for Bearer {SECRET}", status=status)
    channel = make_channel(webhook_config(server), renderer)
    error = send_error(channel, channel.build(make_batch())[0])
    assert error.retryable is retryable
    assert_no_secrets(error)


# --- transport failures, for every HTTP channel ------------------------------------------------


def configs_for(base: str) -> list[Any]:
    return [
        DingTalkReceiver(
            name="d",
            type="dingtalk",
            webhook=f"{base}/robot/send?access_token={TOKEN}",
            secret=SECRET,
        ),
        SlackReceiver(name="s", type="slack", webhook=f"{base}/services/T/B/{TOKEN}"),
        FeishuReceiver(name="f", type="feishu", webhook=f"{base}/hook/{TOKEN}", secret=SECRET),
        WeComReceiver(name="w", type="wecom", webhook=f"{base}/cgi-bin/webhook/send?key={TOKEN}"),
        WebhookReceiver(
            name="h", type="webhook", url=f"{base}/in/{TOKEN}", headers={"X-Key": SECRET}
        ),
    ]


@pytest.mark.parametrize("index", range(5))
def test_connection_refused_is_retryable_and_secret_free(renderer, index):
    config = configs_for(f"http://127.0.0.1:{closed_port()}")[index]
    channel = make_channel(config, renderer, timeout_s=2)
    error = send_error(channel, channel.build(make_batch())[0])
    assert error.retryable and "connection refused" in str(error)
    assert "127.0.0.1" in str(error)
    assert_no_secrets(error, "/robot/send", "/services/", "/hook/")
    assert error.__cause__ is None and error.__suppress_context__


@pytest.mark.parametrize("index", range(5))
def test_timeout_is_retryable(server, renderer, index):
    def slow(request: Request) -> Response:
        time.sleep(1.0)
        return reply("ok")

    for path in (
        "/robot/send",
        f"/services/T/B/{TOKEN}",
        f"/hook/{TOKEN}",
        "/cgi-bin/webhook/send",
        f"/in/{TOKEN}",
    ):
        server.expect_request(path).respond_with_handler(slow)
    config = configs_for(server.url_for("").rstrip("/"))[index]
    channel = make_channel(config, renderer, timeout_s=0.3)
    error = send_error(channel, channel.build(make_batch())[0])
    assert error.retryable and "timed out" in str(error)
    assert_no_secrets(error)


@pytest.mark.parametrize("index", range(5))
def test_garbage_answers_do_not_leak_the_url(server, renderer, index):
    base = server.url_for("").rstrip("/")
    echo = f"error at {base}/robot/send?access_token={TOKEN} key={TOKEN}"
    for path in (
        "/robot/send",
        f"/services/T/B/{TOKEN}",
        f"/hook/{TOKEN}",
        "/cgi-bin/webhook/send",
        f"/in/{TOKEN}",
    ):
        server.expect_request(path).respond_with_data(echo, status=200 if index != 1 else 400)
    channel = make_channel(configs_for(base)[index], renderer)
    error = None
    try:
        channel.send(channel.build(make_batch())[0])
    except DeliveryError as exc:
        error = exc
    if index == 4:
        assert error is None  # a generic webhook accepts any 2xx
    else:
        assert error is not None
        assert_no_secrets(error)
