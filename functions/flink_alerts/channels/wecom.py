"""WeCom (企业微信) group robot: markdown content of at most 4,096 bytes."""

from __future__ import annotations

from typing import Any

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

MAX_CONTENT_BYTES = 4_096  # errcode 40058 beyond
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
    template = "wecom.md.j2"
    max_alerts = 20
    max_message_chars = 600

    def send(self, message: Message) -> str:
        url = self.config.webhook.get_secret_value()
        secrets = url_secrets(url)
        body = json_body(message.payload)
        response = post(url, body, channel=self.label, timeout_s=self.timeout_s)
        check_status(response, channel=self.label, url=url)
        data = response_json(response, channel=self.label, url=url)
        return answer_code(
            data.get("errcode", 0),
            scrub(str(data.get("errmsg", ""))[:200], secrets),
            field="errcode",
            where=f"{self.label} {mask_url(url)}",
            throttled={THROTTLED},
            transient=TRANSIENT,
            hints=_HINTS,
            retry_after=THROTTLE_WAIT_S,
        )

    def payload(self, context: dict[str, Any]) -> dict[str, Any]:
        content = self.part(context, escape="markdown")
        return {"msgtype": "markdown", "markdown": {"content": content}}

    def load(self, payload: dict[str, Any]) -> float:
        return len(payload["markdown"]["content"].encode("utf-8")) / MAX_CONTENT_BYTES

    def cut(self, payload: dict[str, Any]) -> dict[str, Any]:
        markdown = payload["markdown"]
        markdown["content"] = clip_bytes(markdown["content"], MAX_CONTENT_BYTES)
        return payload


CHANNEL = WeComChannel
