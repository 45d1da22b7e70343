"""Feishu / Lark custom bot: an interactive card (header + lark_md text), optional signing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from ..render import clip, clip_bytes
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
SAFETY_BYTES = 500
MAX_TITLE_CHARS = 100
# Frequency limited: come back later. Everything else (19021 bad signature, 19022 IP not allowed,
# 19024 keyword mismatch, 19001 bad parameters, 19002 bad body...) will not fix itself.
THROTTLED = {9499, 11232, 11233}
THROTTLE_WAIT_S = 60.0
TRANSIENT = {-1}
_HINTS = {
    19021: " (signature check failed: check the bot's signing secret and the machine's clock)",
    19022: " (the bot's IP allow-list rejects this machine)",
    19024: " (the message does not contain the bot's keyword)",
}


def sign(secret: str, timestamp_s: int) -> str:
    """Feishu's `sign`: base64 HMAC-SHA256 keyed by "{timestamp}\\n{secret}", empty message."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


class FeishuChannel(Channel):
    type = "feishu"
    default_rate = (100, 60.0)
    template = "feishu.md.j2"
    main_blocks = ("body",)
    max_alerts = 50
    max_message_chars = 1_500

    def send(self, message: Message) -> str:
        url = self.config.webhook.get_secret_value()
        secrets = self._secrets()
        body = json_body(self._signed(message.payload))
        response = post(url, body, channel=self.label, timeout_s=self.timeout_s, secrets=secrets)
        check_status(response, channel=self.label, url=url, secrets=secrets)
        return self._check_answer(response_json(response, channel=self.label, url=url))

    def payload(self, context: dict[str, Any]) -> dict[str, Any]:
        title = " ".join(self.part(context, "title").split())
        body = self.part(context, "body", "markdown")
        color = "green" if context["status"] == "resolved" else "red"
        card = {
            "config": {"wide_screen_mode": True},
            "header": {
                "title": {"tag": "plain_text", "content": clip(title, MAX_TITLE_CHARS)},
                "template": "yellow" if context["test"] else color,
            },
            "elements": [{"tag": "div", "text": {"tag": "lark_md", "content": body}}],
        }
        return {"msg_type": "interactive", "card": card}

    def load(self, payload: dict[str, Any]) -> float:
        return len(json_body(payload)) / (MAX_BODY_BYTES - SAFETY_BYTES)

    def cut(self, payload: dict[str, Any]) -> dict[str, Any]:
        text = payload["card"]["elements"][0]["text"]
        excess = len(json_body(payload)) - (MAX_BODY_BYTES - SAFETY_BYTES)
        # JSON escaping can make the text bigger in the body than in UTF-8: cut twice the excess.
        limit = max(len(text["content"].encode()) - 2 * excess - 64, 0)
        text["content"] = clip_bytes(text["content"], limit)
        return payload

    def _signed(self, payload: dict[str, Any]) -> dict[str, Any]:
        if not self.config.secret:
            return payload
        timestamp = int(time.time())
        signature = sign(self.config.secret.get_secret_value(), timestamp)
        return {"timestamp": str(timestamp), "sign": signature, **payload}

    def _secrets(self) -> list[str]:
        secret = self.config.secret.get_secret_value() if self.config.secret else None
        return [s for s in (secret, *url_secrets(self.config.webhook.get_secret_value())) if s]

    def _check_answer(self, data: dict[str, Any]) -> str:
        # Current API: {"code": 0, "msg": "success"}; older: {"StatusCode": 0, ...}.
        return answer_code(
            data.get("code", data.get("StatusCode", 0)),
            scrub(str(data.get("msg") or data.get("StatusMessage") or "")[:200], self._secrets()),
            field="code",
            where=f"{self.label} {mask_url(self.config.webhook.get_secret_value())}",
            throttled=THROTTLED,
            transient=TRANSIENT,
            hints=_HINTS,
            retry_after=THROTTLE_WAIT_S,
        )


CHANNEL = FeishuChannel
