"""Console: print the rendered text to stdout (local runs, dry runs, FC logs)."""

from __future__ import annotations

import sys
from typing import Any

from ..scrub import scrub
from .base import Channel, Message


class ConsoleChannel(Channel):
    type = "console"
    template = "console.txt.j2"

    def payload(self, context: dict[str, Any]) -> str:
        return self.part(context)

    def send(self, message: Message) -> str:
        print(scrub(message.payload), file=sys.stdout, flush=True)
        return "printed"


CHANNEL = ConsoleChannel
