"""What every channel implements: render a batch into a payload within its limits, send one
message, classify failures.

Channels never retry: `send` raises DeliveryError(retryable=..., retry_after=...) and the shared
outbox (delivery.py) decides when to try again, like Alertmanager's notifiers. The fitting of a
batch into the receiver's limits ("… and N more events") lives here, once.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ..scrub import scrub

if TYPE_CHECKING:
    from ..events import Batch
    from ..render import Renderer

P = TypeVar("P")


@dataclass(frozen=True)
class Message:
    """One request to a receiver and the alerts it carries (so the outbox knows what got through)."""

    receiver: str
    payload: Any  # JSON-able dict for HTTP channels, str for console, EmailMessage for email
    alert_keys: tuple[str, ...]
    only_to: tuple[str, ...] = ()  # email: the envelope recipients still to deliver to
    # A few lines without markup: what is sent when the receiver refuses the payload itself.
    plain_text: str = ""

    def preview(self) -> str:
        """The exact payload as text, for `flink-alerts render` and `--dry-run`."""
        if isinstance(self.payload, (dict, list)):
            return json.dumps(self.payload, ensure_ascii=False, indent=2)
        return str(self.payload)


class Channel(ABC):
    type: ClassVar[str]
    # Default (messages, per seconds) the receiver accepts; None when unbounded.
    default_rate: ClassVar[tuple[int, float] | None] = None
    template: ClassVar[str]  # the default template, shipped in flink_alerts/templates
    # Blocks that a receiver's own template without blocks supplies (its whole text).
    main_blocks: ClassVar[tuple[str, ...]] = ()
    max_alerts: ClassVar[int] = 1_000  # shown in one message; the rest are counted
    max_message_chars: ClassVar[int] = 4_000  # of each event's message
    max_message_lines: ClassVar[int | None] = None  # of each event's message; None: all

    def __init__(self, config: Any, renderer: Renderer, timeout_s: float = 10.0) -> None:
        self.config = config
        self.renderer = renderer
        self.timeout_s = timeout_s

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def label(self) -> str:
        return f"{self.config.type} receiver {self.name!r}"

    def build(self, batch: Batch) -> list[Message]:
        """One message showing as many alerts as the receiver accepts; all are acknowledged."""
        payload = fitted(self.renderer, batch, self.payload, self.load, self.limits())
        if not self.fits(payload):
            payload = self.cut(payload)
        keys = tuple(alert.key for alert in batch.alerts)
        return [Message(self.name, payload, keys, plain_text=plain_text(batch))]

    def plain(self, message: Message) -> Message | None:
        """The message as minimal plain text, or None when the channel has no such form."""
        payload = self.plain_payload(message.plain_text) if message.plain_text else None
        return None if payload is None else replace(message, payload=payload, plain_text="")

    def plain_payload(self, text: str) -> Any | None:
        return None

    def part(self, context: dict[str, Any], block: str | None = None, escape: str = "none") -> str:
        """A block of the receiver's template (or of the default one)."""
        return self.renderer.render_part(
            context,
            escape=escape,
            default=self.template,
            template=self.config.template,
            block=block,
            main=block is None or block in self.main_blocks,
        )

    @abstractmethod
    def payload(self, context: dict[str, Any]) -> Any:
        """The request body for one rendering context (see Renderer.context_for)."""

    def limits(self) -> MessageLimits:
        return MessageLimits(self.max_alerts, self.max_message_chars, self.max_message_lines)

    def load(self, payload: Any) -> float:
        """How full the payload is: its size over what the receiver accepts (fits up to 1.0)."""
        return 0.0

    def fits(self, payload: Any) -> bool:
        return self.load(payload) <= 1.0

    def cut(self, payload: Any) -> Any:
        """Last resort when even the summary does not fit (a huge custom template)."""
        return payload

    @abstractmethod
    def send(self, message: Message) -> str:
        """Deliver one message; return the receiver's answer or raise DeliveryError."""


@dataclass(frozen=True)
class MessageLimits:
    max_alerts: int
    max_message_chars: int
    max_message_lines: int | None


def plain_text(batch: Batch, max_lines: int = 10) -> str:
    """`FIRING: 3 Flink alerts in ns` and one short line per alert; no template, no markup."""
    alerts = batch.alerts
    lines = [
        f"{batch.status.upper()}: {len(alerts) + batch.omitted} Flink alert(s) in {batch.target.name}"
    ]
    for alert in alerts[:max_lines]:
        name = alert.deployment_name or alert.event.deployment_id or "unknown deployment"
        headline = " ".join(alert.event.message.split())[:160]
        lines.append(f"- {name} · {alert.event.event_name} · {headline}")
    if len(alerts) > max_lines or batch.omitted:
        lines.append(f"… and {len(alerts) - min(len(alerts), max_lines) + batch.omitted} more")
    return "\n".join(lines)


# Aim this far below the limit when estimating how many alerts fit: alerts differ in size and the
# parts around them (title, footer) do not grow with their number.
FILL = 0.9
MAX_RENDERS = 3


def fewer_alerts(measured: list[tuple[int, float]]) -> int:
    """How many alerts should fill a payload to FILL, from the (alerts, load) measured so far.

    One measure: the load is taken as proportional to the alerts. Two or more: a line through the
    last two, so the fixed part of the message is accounted for.
    """
    shown, load = measured[-1]
    if len(measured) == 1 or measured[-2][0] == shown:
        estimate = shown * FILL / load
    else:
        before, load_before = measured[-2]
        per_alert = (load_before - load) / (before - shown)
        fixed = load - per_alert * shown
        estimate = (FILL - fixed) / per_alert if per_alert > 0 else shown * FILL / load
    return max(0, min(int(estimate), shown - 1))


def fitted(
    renderer: Renderer,
    batch: Batch,
    make_payload: Callable[[dict[str, Any]], P],
    load: Callable[[P], float],
    limits: MessageLimits,
) -> P:
    """Render the batch showing as many alerts as fit, in one render when they all fit.

    Otherwise the number that fits is estimated from the measured size and rendered again (at most
    MAX_RENDERS in all); alerts that do not fit are counted in `omitted` ("… and N more events").
    Each event's message is first cut to the limits' `max_message_chars` / `max_message_lines`.
    """
    from ..render import with_alerts

    shown = min(len(batch.alerts), limits.max_alerts)
    contexts = renderer.alert_contexts(
        batch.alerts[:shown], limits.max_message_chars, limits.max_message_lines
    )

    def build(count: int) -> P:
        context = renderer.context_for(with_alerts(batch, count), alerts=contexts[:count])
        return make_payload(context)

    payload = build(shown)
    measured = [(shown, load(payload))]
    while measured[-1][1] > 1.0 and shown > 0 and len(measured) < MAX_RENDERS:
        shown = fewer_alerts(measured)
        payload = build(shown)
        measured.append((shown, load(payload)))
    return payload


class RecordingChannel:
    """A channel for `--dry-run`: builds exactly like the real one, prints instead of sending."""

    def __init__(self, channel: Channel, out: Any = None) -> None:
        self.channel = channel
        self.out = out
        self.recorded: list[Message] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.channel, name)

    def send(self, message: Message) -> str:
        self.recorded.append(message)
        print(f"--- would send to {message.receiver} ---", file=self.out)
        print(scrub(message.preview()), file=self.out)
        return "recorded (dry run)"
