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
from datetime import datetime, timedelta

from .channels.base import Channel, Message
from .checkpoint.model import Checkpoint
from .checkpoint.outbox import Outbox, OutboxEntry, RetryPolicy
from .errors import DeliveryError, FlinkAlertsError
from .events import Batch, Target
from .outcomes import Kind, Report

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
        # Receivers down or in need of a fix in this run: their other groups wait for the next
        # run, so a receiver that hangs costs one timeout per run, not one per group.
        self.unavailable: set[str] = set()

    def deliver_due(
        self,
        target: Target,
        checkpoint: Checkpoint,
        now: datetime,
        persist: Callable[[], None],
        report: Report,
    ) -> None:
        self.deliver(checkpoint, lambda: due_batches(target, checkpoint, now), now, persist, report)

    def deliver(
        self,
        outbox: Outbox,
        batches: Callable[[], list[tuple[list[OutboxEntry], Batch]]],
        now: datetime,
        persist: Callable[[], None],
        report: Report,
    ) -> None:
        """Drop what expired, then send the due `batches()` in order, persisting after each."""
        self._log_dropped(outbox.expire(now, self.policy), "older than delivery.max_age", report)
        for entries, batch in batches():
            self._deliver_batch(outbox, batch, entries, now, persist, report)

    def _deliver_batch(
        self,
        checkpoint: Outbox,
        batch: Batch,
        entries: list[OutboxEntry],
        now: datetime,
        persist: Callable[[], None],
        report: Report,
    ) -> None:
        receiver = batch.receiver
        if receiver in self.unavailable:
            return
        channel = self.channels.get(receiver)
        keys = tuple(entry.alert.key for entry in entries)
        if channel is None:
            error = DeliveryError(f"receiver {receiver!r} is no longer configured", retryable=False)
            self._record_failure(checkpoint, receiver, keys, error, now, report)
            persist()
            return
        try:
            messages = channel.build(batch)
        except FlinkAlertsError as exc:  # a template error: kept until the config is fixed
            error = DeliveryError(f"cannot render: {exc}", retryable=True)
            self._record_failure(checkpoint, receiver, keys, error, now, report)
            persist()
            return
        for message in messages:
            delivered = self._send_one(checkpoint, channel, message, now, report)
            persist()
            if not delivered:
                break  # the receiver is down or throttled: keep the rest, in order, for later

    def _send_one(
        self,
        checkpoint: Outbox,
        channel: Channel,
        message: Message,
        now: datetime,
        report: Report,
    ) -> bool:
        wait = self.limiter.wait_time(channel.name)
        if wait > 0:
            checkpoint.defer(channel.name, message.alert_keys, now + timedelta(seconds=wait))
            log.info(
                "rate limit of %s reached; %d alerts wait", channel.name, len(message.alert_keys)
            )
            return False
        try:
            self._send_or_plain(channel, message)
        except DeliveryError as exc:
            self._record_failure(checkpoint, channel.name, message.alert_keys, exc, now, report)
            if exc.retryable or exc.fixable:
                self.unavailable.add(channel.name)
            return False
        checkpoint.delivered(channel.name, message.alert_keys)
        report(Kind.SENT)
        return True

    @staticmethod
    def _send_or_plain(channel: Channel, message: Message) -> None:
        """Send; a message the receiver refuses as such is tried once more as plain text."""
        try:
            channel.send(message)
        except DeliveryError as exc:
            plain = None if exc.retryable or exc.fixable else channel.plain(message)
            if plain is None:
                raise
            channel.send(plain)
            log.warning("%s refused the message (%s); sent it as plain text", channel.name, exc)

    def _record_failure(
        self,
        checkpoint: Outbox,
        receiver: str,
        keys: tuple[str, ...],
        error: DeliveryError,
        now: datetime,
        report: Report,
    ) -> None:
        report(Kind.FAILED, reason=str(error))
        if error.fixable:
            report(Kind.PARKED, len(keys), reason=f"needs a fix: {error}")
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
        self._log_dropped(dropped, str(error), report)

    @staticmethod
    def _log_dropped(entries: list[OutboxEntry], reason: str, report: Report) -> None:
        for entry in entries:
            report(Kind.DROPPED, reason=reason)
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
