"""Console: print the rendered text to stdout (local runs, dry runs, FC logs)."""

from __future__ import annotations

import sys

from ..events import Batch
from .base import Channel, Message

TEMPLATE = "console.txt.j2"
MAX_MESSAGE_CHARS = 4_000


class ConsoleChannel(Channel):
    type = "console"

    def build(self, batch: Batch) -> list[Message]:
        context = self.renderer.context_for(batch, max_message_chars=MAX_MESSAGE_CHARS)
        text = self.renderer.render_part(
            context, escape="none", default=TEMPLATE, template=self.config.template
        )
        return [Message(self.name, text, tuple(alert.key for alert in batch.alerts))]

    def send(self, message: Message) -> str:
        print(message.payload, file=sys.stdout, flush=True)
        return "printed"


CHANNEL = ConsoleChannel
