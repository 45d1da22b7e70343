"""What every channel implements: build messages within its limits, send one, classify failures.

Channels never retry: `send` raises DeliveryError(retryable=..., retry_after=...) and the shared
outbox (delivery.py) decides when to try again, like Alertmanager's notifiers.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ..events import Batch
    from ..render import Renderer


@dataclass(frozen=True)
class Message:
    """One request to a receiver and the alerts it carries (so the outbox knows what got through)."""

    receiver: str
    payload: Any  # JSON-able dict for HTTP channels, str for console, EmailMessage for email
    alert_keys: tuple[str, ...]

    def preview(self) -> str:
        """The exact payload as text, for `flink-alerts render` and `--dry-run`."""
        if isinstance(self.payload, (dict, list)):
            return json.dumps(self.payload, ensure_ascii=False, indent=2)
        return str(self.payload)


class Channel(ABC):
    type: ClassVar[str]
    # Default (messages, per seconds) the receiver accepts; None when unbounded.
    default_rate: ClassVar[tuple[int, float] | None] = None

    def __init__(self, config: Any, renderer: Renderer, timeout_s: float = 10.0) -> None:
        self.config = config
        self.renderer = renderer
        self.timeout_s = timeout_s

    @property
    def name(self) -> str:
        return self.config.name

    @abstractmethod
    def build(self, batch: Batch) -> list[Message]:
        """Render the batch into messages that the receiver will accept (size limits applied)."""

    @abstractmethod
    def send(self, message: Message) -> str:
        """Deliver one message; return the receiver's answer or raise DeliveryError."""
