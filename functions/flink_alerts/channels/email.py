"""Email over SMTP: multipart/alternative (plain text, then HTML), implicit TLS by default."""

from __future__ import annotations

import smtplib
import socket
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from ..errors import DeliveryError
from ..render import clip, clip_bytes
from .base import Channel, Message

MAX_SUBJECT_CHARS = 200
# Gmail clips an HTML body beyond 102 KB behind "[Message clipped] View entire message".
MAX_HTML_BYTES = 100_000
MAX_TEXT_BYTES = 50_000


class AlertEmail(EmailMessage):
    """An EmailMessage whose str() is readable (decoded parts) for `render` and `--dry-run`."""

    def __str__(self) -> str:
        headers = "\n".join(f"{name}: {value}" for name, value in self.items())
        parts = []
        for part in self.iter_parts() if self.is_multipart() else [self]:
            parts.append(f"--- {part.get_content_type()} ---\n{part.get_content()}")
        return headers + "\n\n" + "\n".join(parts)


class EmailChannel(Channel):
    type = "email"
    template = "email.html.j2"
    main_blocks = ("html",)
    max_alerts = 200  # beyond this the email summarises ("… and N more events")
    # Each alert's trace: its summary plus its first lines; the full text stays in the console.
    max_message_chars = 2_000
    max_message_lines = 15

    def send(self, message: Message) -> str:
        where = f"{self.label} smtp://{self.config.host}:{self.config.port}"
        try:
            with self._connect() as smtp:
                if self.config.username:
                    smtp.login(self.config.username, self._password())
                refused = smtp.send_message(message.payload)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            retryable = any(400 <= code < 500 for code in codes)
            raise DeliveryError(
                f"{where}: all recipients refused ({_refusals(exc.recipients)})",
                retryable=retryable,
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"{where}: {exc.smtp_code} {_text(exc.smtp_error)}{_hint(exc.smtp_code)}",
                retryable=400 <= exc.smtp_code < 500,
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(
                f"{where}: TLS certificate not trusted ({exc.verify_message})", retryable=False
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(f"{where}: {exc}", retryable=False) from None
        except (smtplib.SMTPException, OSError) as exc:
            # Refused / reset / timed-out connections and TLS hiccups: try again later.
            reason = "timed out" if isinstance(exc, socket.timeout) else _text(str(exc))
            raise DeliveryError(
                f"{where}: {type(exc).__name__} {reason}".rstrip(), retryable=True
            ) from None
        accepted = len(_recipients(message.payload)) - len(refused)
        note = f"; refused: {_refusals(refused)}" if refused else ""
        return f"accepted for {accepted} recipient(s){note}"

    def _password(self) -> str:
        return self.config.password.get_secret_value() if self.config.password else ""

    def _connect(self) -> smtplib.SMTP:
        config = self.config
        context = ssl.create_default_context()  # system trust store; honours SSL_CERT_FILE
        if config.security == "ssl":
            return smtplib.SMTP_SSL(
                config.host, config.port, timeout=self.timeout_s, context=context
            )
        smtp = smtplib.SMTP(config.host, config.port, timeout=self.timeout_s)
        try:
            if config.security == "starttls":
                smtp.starttls(context=context)
        except BaseException:
            smtp.close()
            raise
        return smtp

    def load(self, payload: AlertEmail) -> float:
        text, html = _parts(payload)
        return max(_size(text) / MAX_TEXT_BYTES, _size(html) / MAX_HTML_BYTES)

    def cut(self, payload: AlertEmail) -> AlertEmail:
        text, html = _parts(payload)
        text.set_content(clip_bytes(text.get_content(), MAX_TEXT_BYTES - 16))
        html.set_content(clip_bytes(html.get_content(), MAX_HTML_BYTES - 16), subtype="html")
        return payload

    def payload(self, context: dict[str, Any]) -> AlertEmail:
        subject = " ".join(self.part(context, "subject").split())
        msg = AlertEmail()
        msg["Subject"] = clip(subject, MAX_SUBJECT_CHARS)
        msg["From"] = self.config.sender
        msg["To"] = ", ".join(self.config.to)
        if self.config.cc:
            msg["Cc"] = ", ".join(self.config.cc)
        msg["Date"] = format_datetime(context["run_time"])
        msg["Message-ID"] = make_msgid("flink-alerts", domain=_domain(self.config.sender))
        msg.set_content(self.part(context, "text") + "\n")
        msg.add_alternative(self.part(context, "html", "html") + "\n", subtype="html")
        return msg


def _parts(msg: EmailMessage) -> tuple[EmailMessage, EmailMessage]:
    text, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert text is not None and html is not None  # payload() always adds both
    return text, html  # type: ignore[return-value]


def _size(part: EmailMessage) -> int:
    return len(part.get_content().encode("utf-8"))


def _domain(sender: str) -> str:
    try:
        address = sender.strip().rsplit("<", 1)[-1].rstrip(">")
        return Address(addr_spec=address).domain or "localhost"
    except (ValueError, IndexError):
        return "localhost"


def _recipients(msg: EmailMessage) -> list[str]:
    return [a for header in ("To", "Cc") for a in (msg.get(header) or "").split(",") if a.strip()]


def _refusals(recipients: dict[str, Any]) -> str:
    return ", ".join(f"{address}: {code}" for address, (code, _) in recipients.items())


def _text(value: bytes | str) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return " ".join(text.split())[:200]


def _hint(code: int) -> str:
    if code in (535, 534, 530):
        return " (check username and password; DirectMail wants the sender's SMTP password)"
    return ""


CHANNEL = EmailChannel
