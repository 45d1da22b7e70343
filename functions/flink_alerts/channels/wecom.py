"""WeCom (企业微信) group robot: markdown content of at most 4,096 bytes."""

from __future__ import annotations

from typing import Any

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

TEMPLATE = "wecom.md.j2"
MAX_CONTENT_BYTES = 4_096  # errcode 40058 beyond
MAX_ALERTS = 20
MAX_MESSAGE_CHARS = 600
THROTTLED = 45009  # more than 20 messages a minute
THROTTLE_WAIT_S = 60.0
TRANSIENT = {-1}  # "system busy"
_HINTS = {
    93000: " (the key in the webhook URL is wrong or the robot was removed)",
    40058: " (message too long)",
}


class WeComChannel(Channel):
    type = "wecom"
    default_rate = (20, 60.0)

    @property
    def label(self) -> str:
        return f"wecom receiver {self.name!r}"

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
            markdown = payload["markdown"]
            markdown["content"] = clip_bytes(markdown["content"], MAX_CONTENT_BYTES)
        return [Message(self.name, payload, tuple(alert.key for alert in batch.alerts))]

    def send(self, message: Message) -> str:
        url = self.config.webhook.get_secret_value()
        secrets = url_secrets(url)
        body = json_body(message.payload)
        response = post(url, body, channel=self.label, timeout_s=self.timeout_s)
        check_status(response, channel=self.label, url=url)
        data = response_json(response, channel=self.label, url=url)
        code = data.get("errcode", 0)
        text = scrub(str(data.get("errmsg", ""))[:200], secrets)
        if code == 0:
            return text or "ok"
        message_text = f"{self.label} {mask_url(url)}: errcode {code} {text}".rstrip()
        if code == THROTTLED:
            raise DeliveryError(message_text, retryable=True, retry_after=THROTTLE_WAIT_S)
        if code in TRANSIENT:
            raise DeliveryError(message_text, retryable=True)
        raise DeliveryError(message_text + _HINTS.get(code, ""), retryable=False)

    def _payload(self, context: dict[str, Any]) -> dict[str, Any]:
        content = self.renderer.render_part(
            context, escape="markdown", default=TEMPLATE, template=self.config.template
        )
        return {"msgtype": "markdown", "markdown": {"content": content}}

    @staticmethod
    def _fits(payload: dict[str, Any]) -> bool:
        return len(payload["markdown"]["content"].encode("utf-8")) <= MAX_CONTENT_BYTES


CHANNEL = WeComChannel
