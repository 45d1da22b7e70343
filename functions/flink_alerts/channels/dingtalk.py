"""DingTalk custom robot: markdown (default), text or actionCard, optional signing and mentions."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any
from urllib.parse import quote_plus

from ..errors import DeliveryError
from ..events import Batch
from ..render import clip_bytes
from .base import Channel, Message
from .http import (
    check_status,
    fitted,
    json_body,
    mask_url,
    post,
    response_json,
    scrub,
    url_secrets,
)

TEMPLATE = "dingtalk.md.j2"
MAX_BODY_BYTES = 20_000
# Room kept for what DingTalk may count differently from us (e.g. its own escaping).
SAFETY_BYTES = 500
MAX_ALERTS = 50
MAX_MESSAGE_CHARS = 1_500
THROTTLED = 130101  # sending too fast: DingTalk blocks the robot for ~10 minutes
THROTTLE_WAIT_S = 60.0
# Every other non-zero errcode (310000 keyword/sign/IP mismatch, 300001/300005 bad token, ...)
# is a configuration problem that retrying will not fix.
TRANSIENT = {-1}  # "system busy"


def sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's `sign`: URL-encoded base64 HMAC-SHA256 of "{timestamp}\\n{secret}"."""
    digest = hmac.new(
        secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return quote_plus(base64.b64encode(digest))


class DingTalkChannel(Channel):
    type = "dingtalk"
    default_rate = (20, 60.0)

    def build(self, batch: Batch) -> list[Message]:
        payload, fits = fitted(
            self.renderer,
            batch,
            self._payload,
            self._fits,
            max_alerts=MAX_ALERTS,
            max_message_chars=MAX_MESSAGE_CHARS,
        )
        if not fits:
            payload = self._cut(payload)
        return [Message(self.name, payload, tuple(alert.key for alert in batch.alerts))]

    def send(self, message: Message) -> str:
        url = self._signed_url()
        secrets = self._secrets()
        response = post(
            url,
            json_body(message.payload),
            channel=self.label,
            timeout_s=self.timeout_s,
            secrets=secrets,
        )
        check_status(response, channel=self.label, url=url, secrets=secrets)
        data = response_json(response, channel=self.label, url=url, secrets=secrets)
        return self._check_answer(data)

    # -- building --

    @property
    def label(self) -> str:
        return f"dingtalk receiver {self.name!r}"

    def _part(self, context: dict[str, Any], block: str, escape: str = "markdown") -> str:
        return self.renderer.render_part(
            context,
            escape=escape,
            default=TEMPLATE,
            template=self.config.template,
            block=block,
            main=block in ("text", "plain"),
        )

    def _payload(self, context: dict[str, Any]) -> dict[str, Any]:
        msgtype = self.config.msgtype
        title = self._part(context, "title")
        if msgtype == "text":
            text = self._with_mentions(self._part(context, "plain", escape="text"))
            return {"msgtype": "text", "text": {"content": text}, "at": self._at()}
        text = self._part(context, "text")
        url = next((a["console_url"] for a in context["alerts"] if a["console_url"]), "")
        if msgtype == "actionCard" and url:
            card = {"title": title, "text": text, "singleTitle": "Open in console"}
            card["singleURL"] = url
            return {"msgtype": "actionCard", "actionCard": card}
        markdown = {"title": title, "text": self._with_mentions(text)}
        return {"msgtype": "markdown", "markdown": markdown, "at": self._at()}

    def _at(self) -> dict[str, Any]:
        return {
            "atMobiles": list(self.config.at_mobiles),
            "atUserIds": list(self.config.at_user_ids),
            "isAtAll": bool(self.config.at_all),
        }

    def _with_mentions(self, text: str) -> str:
        """DingTalk only pings a mobile or user id that also appears as `@...` in the text."""
        names = [*self.config.at_mobiles, *self.config.at_user_ids]
        missing = [f"@{name}" for name in names if f"@{name}" not in text]
        return f"{text}\n\n{' '.join(missing)}" if missing else text

    @staticmethod
    def _fits(payload: dict[str, Any]) -> bool:
        return len(json_body(payload)) <= MAX_BODY_BYTES - SAFETY_BYTES

    def _cut(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Last resort for a huge custom template: cut the text to the byte budget."""
        body = payload.get("markdown") or payload.get("actionCard") or payload["text"]
        field = "content" if "content" in body else "text"
        excess = len(json_body(payload)) - (MAX_BODY_BYTES - SAFETY_BYTES)
        # JSON escaping can make the text bigger in the body than in UTF-8: cut twice the excess.
        limit = max(len(body[field].encode("utf-8")) - 2 * excess - 64, 0)
        body[field] = clip_bytes(body[field], limit)
        if "title" in body:
            body["title"] = clip_bytes(body["title"], 256)
        return payload

    # -- sending --

    def _secrets(self) -> list[str]:
        secret = self.config.secret.get_secret_value() if self.config.secret else None
        return [s for s in (secret, *url_secrets(self.config.webhook.get_secret_value())) if s]

    def _signed_url(self) -> str:
        url = self.config.webhook.get_secret_value()
        if not self.config.secret:
            return url
        timestamp = int(time.time() * 1000)
        signature = sign(self.config.secret.get_secret_value(), timestamp)
        separator = "&" if "?" in url else "?"
        return f"{url}{separator}timestamp={timestamp}&sign={signature}"

    def _check_answer(self, data: dict[str, Any]) -> str:
        code = _int(data.get("errcode", 0))
        text = scrub(str(data.get("errmsg", ""))[:200], self._secrets())
        if code == 0:
            return text or "ok"
        where = f"{self.label} {mask_url(self.config.webhook.get_secret_value())}"
        message = f"{where}: errcode {code} {text}".rstrip()
        if code == THROTTLED:
            raise DeliveryError(message, retryable=True, retry_after=THROTTLE_WAIT_S)
        if code in TRANSIENT:
            raise DeliveryError(message, retryable=True)
        hint = _HINTS.get(code, "")
        raise DeliveryError(f"{message}{hint}", retryable=False)


_HINTS = {
    310000: " (check the robot's security settings: keyword, signing secret or IP allow-list)",
    300001: " (the access_token in the webhook URL is wrong or the robot was removed)",
    300005: " (the access_token in the webhook URL is wrong or the robot was removed)",
}


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -2  # not a number: treat as an unknown (permanent) error


CHANNEL = DingTalkChannel
