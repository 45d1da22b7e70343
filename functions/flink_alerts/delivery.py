"""The one retry/outbox stage shared by every channel.

For each receiver, the due outbox entries (oldest event first) are folded into one batch, built
into messages by the channel, and sent one by one. After every attempt the checkpoint is saved,
so a crash repeats at most the message in flight. Channels only classify failures.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .channels.base import Channel, Message
from .checkpoint.model import Checkpoint
from .checkpoint.outbox import Outbox, OutboxEntry, RetryPolicy
from .errors import DeliveryError, FlinkAlertsError
from .events import Batch, Target

log = logging.getLogger("flink_alerts.delivery")


class RateLimiter:
    """Sliding-window limit per receiver, shared by all targets of a run."""

    def __init__(
        self, limits: dict[str, tuple[int, float]], clock: Callable[[], float] = time.monotonic
    ):
        self.limits = limits
        self.clock = clock
        self.sent: dict[str, deque[float]] = {}
        self.lock = threading.Lock()

    def wait_time(self, receiver: str) -> float:
        """0 and a reserved slot when a message may go now; else seconds until one frees up."""
        if receiver not in self.limits:
            return 0.0
        count, period = self.limits[receiver]
        with self.lock:
            now = self.clock()
            window = self.sent.setdefault(receiver, deque())
            while window and window[0] <= now - period:
                window.popleft()
            if len(window) < count:
                window.append(now)
                return 0.0
            return window[0] + period - now


@dataclass
class DeliveryStats:
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    needs_fix: list[str] = field(default_factory=list)


def due_batches(
    target: Target, checkpoint: Checkpoint, now: datetime
) -> list[tuple[list[OutboxEntry], Batch]]:
    """Per receiver, its due entries folded into one batch, oldest event first."""
    return [
        (entries, Batch(receiver, target, tuple(e.alert for e in entries), run_time=now))
        for receiver, entries in checkpoint.due(now).items()
    ]


class Deliverer:
    def __init__(self, channels: dict[str, Channel], policy: RetryPolicy, limiter: RateLimiter):
        self.channels = channels
        self.policy = policy
        self.limiter = limiter

    def deliver_due(
        self, target: Target, checkpoint: Checkpoint, now: datetime, persist: Callable[[], None]
    ) -> DeliveryStats:
        return self.deliver(checkpoint, lambda: due_batches(target, checkpoint, now), now, persist)

    def deliver(
        self,
        outbox: Outbox,
        batches: Callable[[], list[tuple[list[OutboxEntry], Batch]]],
        now: datetime,
        persist: Callable[[], None],
    ) -> DeliveryStats:
        """Drop what expired, then send the due `batches()` in order, persisting after each."""
        stats = DeliveryStats()
        self._log_dropped(outbox.expire(now, self.policy), "older than delivery.max_age", stats)
        for entries, batch in batches():
            self._deliver_batch(outbox, batch, entries, now, persist, stats)
        return stats

    def _deliver_batch(
        self,
        checkpoint: Outbox,
        batch: Batch,
        entries: list[OutboxEntry],
        now: datetime,
        persist: Callable[[], None],
        stats: DeliveryStats,
    ) -> None:
        receiver = batch.receiver
        channel = self.channels.get(receiver)
        keys = tuple(entry.alert.key for entry in entries)
        if channel is None:
            error = DeliveryError(f"receiver {receiver!r} is no longer configured", retryable=False)
            self._record_failure(checkpoint, receiver, keys, error, now, stats)
            persist()
            return
        try:
            messages = channel.build(batch)
        except FlinkAlertsError as exc:  # a template error: kept until the config is fixed
            error = DeliveryError(f"cannot render: {exc}", retryable=True)
            self._record_failure(checkpoint, receiver, keys, error, now, stats)
            persist()
            return
        for message in messages:
            delivered = self._send_one(checkpoint, channel, message, now, stats)
            persist()
            if not delivered:
                break  # the receiver is down or throttled: keep the rest, in order, for later

    def _send_one(
        self,
        checkpoint: Outbox,
        channel: Channel,
        message: Message,
        now: datetime,
        stats: DeliveryStats,
    ) -> bool:
        wait = self.limiter.wait_time(channel.name)
        if wait > 0:
            checkpoint.defer(channel.name, message.alert_keys, now + timedelta(seconds=wait))
            log.info(
                "rate limit of %s reached; %d alerts wait", channel.name, len(message.alert_keys)
            )
            return False
        try:
            channel.send(message)
        except DeliveryError as exc:
            self._record_failure(checkpoint, channel.name, message.alert_keys, exc, now, stats)
            return False
        checkpoint.delivered(channel.name, message.alert_keys)
        stats.sent += 1
        return True

    def _record_failure(
        self,
        checkpoint: Outbox,
        receiver: str,
        keys: tuple[str, ...],
        error: DeliveryError,
        now: datetime,
        stats: DeliveryStats,
    ) -> None:
        stats.failed += 1
        if error.fixable:
            stats.needs_fix.append(f"needs a fix: {error}")
            log.error(
                "delivery to %s needs a fix: %s; %d alerts wait for it until delivery.max_age, "
                "check with `flink-alerts test-send --receiver %s`",
                receiver,
                error,
                len(keys),
                receiver,
            )
        else:
            kind = "will retry" if error.retryable else "permanent"
            log.warning("delivery to %s failed (%s): %s", receiver, kind, error)
        dropped = checkpoint.failed(
            receiver,
            keys,
            error=str(error),
            retryable=error.retryable,
            retry_after=error.retry_after,
            now=now,
            policy=self.policy,
            parked=error.fixable,
            retry_only=error.retry_only,
        )
        self._log_dropped(dropped, str(error), stats)

    @staticmethod
    def _log_dropped(entries: list[OutboxEntry], reason: str, stats: DeliveryStats) -> None:
        for entry in entries:
            stats.dropped += 1
            event = entry.alert.event
            log.error(
                "dropped alert for receiver %s: target=%s event=%s (%s at %s) after %d attempts: %s",
                entry.receiver,
                f"{event.workspace}/{event.namespace}",
                entry.alert.key,
                entry.alert.event.event_name,
                entry.alert.event.created_at.isoformat(),
                entry.attempts,
                reason,
            )
