"""Channel registry: `make_channel(config, renderer)` imports only the module the receiver needs.

Helpers for the CLI: `preview` (what `flink-alerts render` prints) and `deliver` (`test-send`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..settings import receiver_channels
from .base import Channel, Message

if TYPE_CHECKING:
    from ..events import Batch
    from ..render import Renderer

# receiver `type` -> module in this package ("lark" is Feishu's international edition).
MODULES = receiver_channels()

__all__ = ["MODULES", "Channel", "Message", "deliver", "make_channel", "preview"]


def make_channel(config: Any, renderer: Renderer, timeout_s: float = 10.0) -> Channel:
    kind = getattr(config, "type", None)
    if kind not in MODULES:
        raise ConfigError("receivers", f"unknown receiver type {kind!r}")
    module = importlib.import_module(f".{MODULES[kind]}", __name__)
    return module.CHANNEL(config, renderer, timeout_s=timeout_s)


def preview(config: Any, renderer: Renderer, batch: Batch) -> list[str]:
    """The exact payloads the receiver would get for this batch, as text (nothing is sent)."""
    return [message.preview() for message in make_channel(config, renderer).build(batch)]


def deliver(config: Any, renderer: Renderer, batch: Batch, timeout_s: float = 10.0) -> list[str]:
    """Build and send the batch now, without the outbox; raises DeliveryError on a failure."""
    channel = make_channel(config, renderer, timeout_s=timeout_s)
    return [channel.send(message) for message in channel.build(batch)]
