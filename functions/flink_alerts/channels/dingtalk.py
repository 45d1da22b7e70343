"""DingTalk custom robot: markdown (default), text or actionCard, optional signing and mentions."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any
from urllib.parse import quote_plus

from ..render import clip_bytes
from .base import Channel, Message
from .http import (
    answer_code,
    check_status,
    json_body,
    mask_url,
    post,
    response_json,
    scrub,
    url_secrets,
)

MAX_BODY_BYTES = 20_000
# Room kept for what DingTalk may count differently from us (e.g. its own escaping).
SAFETY_BYTES = 500
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
    template = "dingtalk.md.j2"
    main_blocks = ("text", "plain")
    max_alerts = 50
    max_message_chars = 1_500

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

    def payload(self, context: dict[str, Any]) -> dict[str, Any]:
        msgtype = self.config.msgtype
        title = self.part(context, "title", "markdown")
        if msgtype == "text":
            text = self._with_mentions(self.part(context, "plain", "text"))
            return {"msgtype": "text", "text": {"content": text}, "at": self._at()}
        text = self.part(context, "text", "markdown")
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

    def load(self, payload: dict[str, Any]) -> float:
        return len(json_body(payload)) / (MAX_BODY_BYTES - SAFETY_BYTES)

    def cut(self, payload: dict[str, Any]) -> dict[str, Any]:
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
        return answer_code(
            data.get("errcode", 0),
            scrub(str(data.get("errmsg", ""))[:200], self._secrets()),
            field="errcode",
            where=f"{self.label} {mask_url(self.config.webhook.get_secret_value())}",
            throttled={THROTTLED},
            transient=TRANSIENT,
            hints=_HINTS,
            retry_after=THROTTLE_WAIT_S,
        )


_HINTS = {
    310000: " (check the robot's security settings: keyword, signing secret or IP allow-list)",
    300001: " (the access_token in the webhook URL is wrong or the robot was removed)",
    300005: " (the access_token in the webhook URL is wrong or the robot was removed)",
}


CHANNEL = DingTalkChannel
