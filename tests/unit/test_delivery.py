"""The shared outbox stage: folding, ordering, backoff, rate limits, drops. No server needed:
the channel here is a scripted receiver, the thing under test is delivery.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from flink_alerts.channels.base import Channel, Message
from flink_alerts.checkpoint.model import Checkpoint
from flink_alerts.checkpoint.outbox import RetryPolicy
from flink_alerts.delivery import Deliverer, RateLimiter, due_batches
from flink_alerts.errors import DeliveryError
from flink_alerts.events import Alert, Batch, FlinkEvent, Target
from flink_alerts.outcomes import Kind, Recorder

T0 = datetime(2026, 11, 26, tzinfo=timezone.utc)
TARGET = Target("ws", "ns")


class ScriptedChannel(Channel):
    """Sends each alert as its own message; answers from a script of outcomes."""

    type = "scripted"

    def __init__(self, name: str, outcomes: list[DeliveryError | None]) -> None:
        super().__init__(type("Config", (), {"name": name})(), renderer=None)
        self.outcomes = outcomes
        self.sent: list[tuple[str, ...]] = []
        self.payloads: list[dict] = []

    def build(self, batch: Batch) -> list[Message]:
        return [Message(batch.receiver, {}, (a.key,), plain_text=a.key) for a in batch.alerts]

    def plain_payload(self, text: str) -> dict:
        return {"text": text}

    def payload(self, context: dict) -> dict:
        return {}

    def send(self, message: Message) -> str:
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome:
            raise outcome
        self.sent.append(message.alert_keys)
        self.payloads.append(message.payload)
        return "ok"


def checkpoint_with(*keys: str, receiver: str = "r") -> Checkpoint:
    checkpoint = Checkpoint()
    alerts = [
        Alert(FlinkEvent(key, "JOB_FAILED", T0 + timedelta(seconds=n), "ws", "ns"))
        for n, key in enumerate(keys)
    ]
    checkpoint.enqueue([(receiver, alert) for alert in reversed(alerts)], T0)
    return checkpoint


def due(deliverer: Deliverer, checkpoint: Checkpoint, now: datetime, persist) -> Stats:
    """Deliver the checkpoint's due entries; what happened, as counts of the outcomes."""
    stats = Stats(Recorder())
    deliverer.deliver_due(TARGET, checkpoint, now, persist, stats.recorder.at("receiver r"))
    return stats


@dataclass
class Stats:
    recorder: Recorder

    def __getattr__(self, name: str) -> int:
        return self.recorder.total(Kind(name))


def deliverer(channel: Channel, limits=None, policy=None) -> Deliverer:
    return Deliverer({channel.name: channel}, policy or RetryPolicy(), RateLimiter(limits or {}))


def test_sends_in_event_order_and_saves_after_each_message():
    channel = ScriptedChannel("r", [])
    checkpoint = checkpoint_with("a", "b", "c")
    saves: list[int] = []
    stats = due(deliverer(channel), checkpoint, T0, lambda: saves.append(len(checkpoint.outbox)))
    assert channel.sent == [("a",), ("b",), ("c",)]
    assert saves == [2, 1, 0] and stats.sent == 3 and checkpoint.outbox == []


def test_a_retryable_failure_keeps_the_rest_in_order_for_later():
    channel = ScriptedChannel("r", [None, DeliveryError("503", retryable=True)])
    checkpoint = checkpoint_with("a", "b", "c")
    stats = due(deliverer(channel), checkpoint, T0, lambda: None)
    assert channel.sent == [("a",)] and stats.failed == 1 and stats.dropped == 0
    later = T0 + timedelta(hours=1)
    waiting = checkpoint.due(later)["r"]
    assert [(e.alert.key, e.attempts) for e in waiting] == [("b", 1), ("c", 0)]
    due(deliverer(channel), checkpoint, later, lambda: None)
    assert channel.sent == [("a",), ("b",), ("c",)]


def test_rate_limit_defers_without_counting_an_attempt():
    clock = [0.0]
    limiter = RateLimiter({"r": (2, 60.0)}, clock=lambda: clock[0])
    channel = ScriptedChannel("r", [])
    checkpoint = checkpoint_with("a", "b", "c")
    due(Deliverer({"r": channel}, RetryPolicy(), limiter), checkpoint, T0, lambda: None)
    assert channel.sent == [("a",), ("b",)]
    (waiting,) = checkpoint.outbox
    assert waiting.attempts == 0 and waiting.next_attempt_at == T0 + timedelta(seconds=60)
    clock[0] = 60.0
    due(
        Deliverer({"r": channel}, RetryPolicy(), limiter),
        checkpoint,
        T0 + timedelta(seconds=60),
        lambda: None,
    )
    assert channel.sent[-1] == ("c",) and checkpoint.outbox == []


def test_permanent_failures_and_expired_entries_are_dropped_and_counted(caplog):
    refused = DeliveryError("bad token", retryable=False)
    channel = ScriptedChannel("r", [refused, refused])  # the message, then as plain text
    checkpoint = checkpoint_with("a")
    stats = due(deliverer(channel), checkpoint, T0, lambda: None)
    assert stats.dropped == 1 and checkpoint.outbox == []
    old = checkpoint_with("z")
    stats = due(
        deliverer(channel, policy=RetryPolicy(max_age=60)),
        old,
        T0 + timedelta(minutes=5),
        lambda: None,
    )
    assert stats.dropped == 1 and old.outbox == []
    dropped = [r for r in caplog.records if r.levelname == "ERROR"]
    assert [("event=a" in r.getMessage(), "event=z" in r.getMessage()) for r in dropped] == [
        (True, False),
        (False, True),
    ]
    assert all("receiver r" in r.getMessage() for r in dropped)


def test_a_receiver_removed_from_the_config_is_dropped_loudly():
    channel = ScriptedChannel("r", [])
    checkpoint = checkpoint_with("a", receiver="gone")
    stats = due(deliverer(channel), checkpoint, T0, lambda: None)
    assert stats.dropped == 1 and channel.sent == []


def test_retry_after_from_the_receiver_is_honoured():
    channel = ScriptedChannel("r", [DeliveryError("429", retryable=True, retry_after=120)])
    checkpoint = checkpoint_with("a")
    due(deliverer(channel, policy=RetryPolicy(initial_backoff=1)), checkpoint, T0, lambda: None)
    assert checkpoint.outbox[0].next_attempt_at == T0 + timedelta(seconds=120)


def test_a_refused_message_is_tried_once_as_plain_text_before_it_is_dropped():
    refused = DeliveryError("HTTP 400 invalid_payload", retryable=False)
    channel = ScriptedChannel("r", [refused, None, refused, refused])
    checkpoint = checkpoint_with("a", "b")
    stats = due(deliverer(channel), checkpoint, T0, lambda: None)
    assert channel.sent == [("a",)] and channel.payloads == [{"text": "a"}]
    assert stats.sent == 1 and stats.dropped == 1 and checkpoint.outbox == []


def test_no_plain_text_retry_for_errors_that_are_not_about_the_message():
    channel = ScriptedChannel("r", [DeliveryError("HTTP 401", retryable=False, fixable=True)])
    checkpoint = checkpoint_with("a")
    stats = due(deliverer(channel), checkpoint, T0, lambda: None)
    assert channel.sent == [] and stats.parked == 1 and len(checkpoint.outbox) == 1


def two_groups(checkpoint: Checkpoint) -> list:
    """The checkpoint's due entries as two message groups (two deployments, say)."""
    (entries, batch), *_ = due_batches(TARGET, checkpoint, T0)
    halves = [entries[:1], entries[1:]]
    return [
        (half, Batch("r", TARGET, tuple(e.alert for e in half), run_time=T0)) for half in halves
    ]


@pytest.mark.parametrize(
    "error",
    [
        DeliveryError("timed out", retryable=True),
        DeliveryError("HTTP 401", retryable=False, fixable=True),
    ],
)
def test_a_receiver_that_is_down_is_tried_once_per_run_not_once_per_group(error):
    # A receiver that hangs would otherwise cost delivery.timeout_s per message group and blow
    # the run's deadline (and FC's timeout) with many deployments failing at once.
    channel = ScriptedChannel("r", [error, error])
    checkpoint = checkpoint_with("a", "b")
    stats = Stats(Recorder())
    report = stats.recorder.at("receiver r")
    deliverer(channel).deliver(checkpoint, lambda: two_groups(checkpoint), T0, lambda: None, report)
    assert stats.failed == 1 and len(channel.outcomes) == 1
    assert {entry.alert.key for entry in checkpoint.outbox} == {"a", "b"}


def test_a_message_refused_for_itself_does_not_stop_the_next_group():
    refused = DeliveryError("HTTP 400 invalid_payload", retryable=False)
    channel = ScriptedChannel("r", [refused, refused])  # the message, then as plain text
    checkpoint = checkpoint_with("a", "b")
    stats = Stats(Recorder())
    report = stats.recorder.at("receiver r")
    deliverer(channel).deliver(checkpoint, lambda: two_groups(checkpoint), T0, lambda: None, report)
    assert stats.dropped == 1 and channel.sent == [("b",)] and checkpoint.outbox == []
