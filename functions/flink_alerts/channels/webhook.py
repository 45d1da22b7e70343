"""Generic webhook: POST the JSON document rendered from a template, with optional headers."""

from __future__ import annotations

import json
from typing import Any

from ..errors import ConfigError
from .base import Channel, Message
from .http import check_status, json_body, post, url_secrets


class WebhookChannel(Channel):
    type = "webhook"
    template = "webhook.json.j2"
    max_message_chars = 20_000

    def plain_payload(self, text: str) -> dict[str, Any]:
        return {"text": text}

    def payload(self, context: dict[str, Any]) -> Any:
        text = self.part(context, escape="json")
        try:
            return json.loads(text)
        except ValueError as exc:
            where = self.config.template or self.template
            raise ConfigError(where, f"the template does not render valid JSON: {exc}") from None

    def send(self, message: Message) -> str:
        url = self.config.url.get_secret_value()
        headers = {name: value.get_secret_value() for name, value in self.config.headers.items()}
        secrets = [*headers.values(), *url_secrets(url)]
        response = post(
            url,
            json_body(message.payload),
            channel=self.label,
            timeout_s=self.timeout_s,
            headers=headers,
            secrets=secrets,
        )
        check_status(response, channel=self.label, url=url, secrets=secrets)
        return f"HTTP {response.status_code}"


CHANNEL = WebhookChannel
