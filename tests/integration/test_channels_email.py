"""Email against a local aiosmtpd server: implicit TLS and STARTTLS with trustme certificates."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from dataclasses import replace
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from flink_alerts.channels import make_channel
from flink_alerts.errors import DeliveryError
from flink_alerts.events import Batch
from flink_alerts.render import Renderer
from flink_alerts.settings import EmailReceiver
from tests.factories import failure_batch

USER = "alerts@example.com"
PASSWORD = "smtp-pa55word-value"
MESSAGE = "作业失败：连接超时 <script>alert(1)</script> & more"


def make_batch(count: int = 2) -> Batch:
    return failure_batch([MESSAGE] * count, receiver="mail", names="订单-etl-{}")


class Recorder:
    """aiosmtpd handler: records what arrives; `rcpt_reply` / `data_reply` inject failures."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None
        self.refuse: dict[str, str] = {}  # address -> reply, for that address only

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if self.rcpt_reply:
            return self.rcpt_reply
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.data_reply:
            return self.data_reply
        self.envelopes.append(envelope)
        return "250 Message accepted"


def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USER.encode()
        and auth_data.password == PASSWORD.encode()
    )
    # handled=False lets aiosmtpd answer 535 itself (handled=True without a reply hangs clients).
    return AuthResult(success=ok, handled=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def trust_ca(ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the system trust store (as ssl.create_default_context sees it) trust our CA."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    monkeypatch.setenv("SSL_CERT_FILE", str(path))


def start(controller: Controller) -> Controller:
    controller.start()
    return controller


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def implicit_tls(recorder, server_context) -> Iterator[Controller]:
    controller = start(
        Controller(
            recorder,
            hostname="127.0.0.1",
            port=free_port(),
            ssl_context=server_context,
            authenticator=authenticator,
            auth_require_tls=False,  # the whole connection is TLS; aiosmtpd cannot tell
        )
    )
    yield controller
    controller.stop()


@pytest.fixture
def starttls(recorder, server_context) -> Iterator[Controller]:
    controller = start(
        Controller(
            recorder,
            hostname="127.0.0.1",
            port=free_port(),
            tls_context=server_context,
            require_starttls=True,
            authenticator=authenticator,
            auth_require_tls=True,
        )
    )
    yield controller
    controller.stop()


@pytest.fixture
def plain(recorder) -> Iterator[Controller]:
    controller = start(Controller(recorder, hostname="127.0.0.1", port=free_port()))
    yield controller
    controller.stop()


def config(controller: Controller, security: str, **changes: Any) -> EmailReceiver:
    values = {
        "name": "mail",
        "type": "email",
        "host": "127.0.0.1",
        "port": controller.port,
        "security": security,
        "username": USER,
        "password": PASSWORD,
        "sender": f"Flink Alerts <{USER}>",
        "to": ["oncall@example.com", "lead@example.com"],
        "cc": ["team@example.com"],
    }
    return EmailReceiver(**{**values, **changes})


def send(receiver: EmailReceiver, batch: Batch | None = None) -> str:
    channel = make_channel(receiver, Renderer(), timeout_s=5)
    return channel.send(channel.build(batch or make_batch())[0])


def send_error(receiver: EmailReceiver) -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        send(receiver)
    assert PASSWORD not in str(info.value)
    return info.value


def assert_received(recorder: Recorder) -> None:
    (envelope,) = recorder.envelopes
    assert sorted(envelope.rcpt_tos) == [
        "lead@example.com",
        "oncall@example.com",
        "team@example.com",
    ]
    assert envelope.mail_from == USER
    msg = message_from_bytes(envelope.original_content, policy=policy.default)
    assert "订单-etl-0" in msg["Subject"] and "2 Flink failures" in msg["Subject"]
    assert msg["To"] == "oncall@example.com, lead@example.com" and msg["Cc"] == "team@example.com"
    assert msg["Date"] and msg["Message-ID"].endswith("@example.com>")
    assert msg.get_content_type() == "multipart/alternative"
    plain_part, html_part = msg.iter_parts()
    assert plain_part.get_content_type() == "text/plain"
    assert html_part.get_content_type() == "text/html"
    text, html = plain_part.get_content(), html_part.get_content()
    assert "作业失败：连接超时" in text and "作业失败：连接超时" in html
    assert "<script>" in text  # plain text is shown as is
    assert "<script>" not in html and "&lt;script&gt;" in html and "&amp; more" in html
    assert 'href="https://console.example.com/dep-0"' in html


def test_implicit_tls_with_auth(implicit_tls, recorder, trust_ca):
    answer = send(config(implicit_tls, "ssl"))
    assert answer == "accepted for 3 recipient(s)"
    assert_received(recorder)


def test_starttls_with_auth(starttls, recorder, trust_ca):
    send(config(starttls, "starttls"))
    assert_received(recorder)


def test_no_tls_without_auth(plain, recorder):
    send(config(plain, "none", username=None, password=None))
    assert_received(recorder)


def test_wrong_password_is_permanent(implicit_tls, trust_ca):
    error = send_error(config(implicit_tls, "ssl", password="not-the-password"))
    assert not error.retryable and "535" in str(error)
    assert "not-the-password" not in str(error)


def test_untrusted_certificate_is_permanent(implicit_tls):
    error = send_error(config(implicit_tls, "ssl"))
    assert not error.retryable and "certificate" in str(error)


def test_recipient_refused_550_is_permanent(plain, recorder):
    recorder.rcpt_reply = "550 5.1.1 No such user"
    error = send_error(config(plain, "none", username=None, password=None))
    assert not error.retryable and "550" in str(error)


def test_temporary_failure_4xx_is_retryable(plain, recorder):
    recorder.data_reply = "451 4.3.0 Try again later"
    error = send_error(config(plain, "none", username=None, password=None))
    assert error.retryable and "451" in str(error)


def test_greylisted_recipient_4xx_is_retryable(plain, recorder):
    recorder.rcpt_reply = "450 4.2.0 Greylisted, come back later"
    error = send_error(config(plain, "none", username=None, password=None))
    assert error.retryable and "450" in str(error)


def test_connection_refused_is_retryable():
    receiver = EmailReceiver(
        name="mail",
        type="email",
        host="127.0.0.1",
        port=free_port(),
        sender=USER,
        to=["a@example.com"],
        password=PASSWORD,
        username=USER,
    )
    error = send_error(receiver)
    assert error.retryable and "ConnectionRefusedError" in str(error)


def test_silent_server_times_out_retryably():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the TCP connection, never says hello
        receiver = EmailReceiver(
            name="mail",
            type="email",
            host="127.0.0.1",
            port=listener.getsockname()[1],
            security="none",
            sender=USER,
            to=["a@example.com"],
        )
        channel = make_channel(receiver, Renderer(), timeout_s=0.5)
        with pytest.raises(DeliveryError) as info:
            channel.send(channel.build(make_batch())[0])
    assert info.value.retryable and "timed out" in str(info.value)


def test_starttls_required_but_server_without_tls_is_permanent(plain):
    error = send_error(config(plain, "starttls", username=None, password=None))
    assert not error.retryable and "STARTTLS" in str(error)


def test_recipients_refused_with_4xx_are_retried_alone(plain, recorder):
    receiver = config(plain, "none", username=None, password=None)
    recorder.refuse = {"lead@example.com": "450 4.2.0 Mailbox busy, try later"}
    error = send_error(receiver)
    assert error.retryable and error.retry_only == ("lead@example.com",)
    assert "accepted for 2 recipient(s)" in str(error)
    recorder.refuse = {}
    answer = send(receiver, replace(make_batch(), only_to=error.retry_only))
    assert answer == "accepted for 1 recipient(s)"
    first, retry = recorder.envelopes
    assert sorted(first.rcpt_tos) == ["oncall@example.com", "team@example.com"]
    assert retry.rcpt_tos == ["lead@example.com"]
    retried = message_from_bytes(retry.original_content, policy=policy.default)
    assert retried["To"] == "oncall@example.com, lead@example.com"  # the headers stay whole


def test_recipients_refused_with_5xx_only_are_reported_not_retried(plain, recorder):
    recorder.refuse = {"lead@example.com": "550 5.1.1 No such user"}
    answer = send(config(plain, "none", username=None, password=None))
    assert answer.startswith("accepted for 2 recipient(s); refused: lead@example.com: 550")
