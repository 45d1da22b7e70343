"""Generic webhook: POST the JSON document rendered from a template, with optional headers."""

from __future__ import annotations

import json

from ..errors import ConfigError
from ..events import Batch
from .base import Channel, Message
from .http import check_status, json_body, post, url_secrets

TEMPLATE = "webhook.json.j2"
MAX_MESSAGE_CHARS = 20_000


class WebhookChannel(Channel):
    type = "webhook"

    @property
    def label(self) -> str:
        return f"webhook receiver {self.name!r}"

    def build(self, batch: Batch) -> list[Message]:
        context = self.renderer.context_for(batch, max_message_chars=MAX_MESSAGE_CHARS)
        text = self.renderer.render_part(
            context, escape="json", default=TEMPLATE, template=self.config.template
        )
        try:
            payload = json.loads(text)
        except ValueError as exc:
            where = self.config.template or TEMPLATE
            raise ConfigError(where, f"the template does not render valid JSON: {exc}") from None
        return [Message(self.name, payload, tuple(alert.key for alert in batch.alerts))]

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
