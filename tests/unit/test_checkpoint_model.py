from datetime import datetime, timedelta, timezone

import pytest

from flink_alerts.checkpoint.model import Checkpoint
from flink_alerts.checkpoint.outbox import RetryPolicy
from flink_alerts.errors import CheckpointError
from flink_alerts.events import Alert, FlinkEvent

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)
OVERLAP = timedelta(minutes=10)


def event(event_id: str, minutes: float) -> FlinkEvent:
    return FlinkEvent(event_id, "JOB_FAILED", T0 + timedelta(minutes=minutes), "ws", "ns", "d1")


def test_first_checkpoint_treats_everything_as_new():
    assert Checkpoint().is_new(event("a", -1000), OVERLAP)


def test_equal_and_slightly_older_timestamps_are_compared_by_id():
    checkpoint = Checkpoint()
    checkpoint.advance([event("a", 0), event("b", 5)], OVERLAP)
    assert checkpoint.watermark == T0 + timedelta(minutes=5)
    assert not checkpoint.is_new(event("b", 5), OVERLAP)
    assert checkpoint.is_new(event("c", 5), OVERLAP)  # same timestamp, other id
    assert checkpoint.is_new(event("late", 1), OVERLAP)  # arrived late, within the window
    assert not checkpoint.is_new(event("old", -6), OVERLAP)  # below the window: handled


def test_seen_ids_are_pruned_below_the_window():
    checkpoint = Checkpoint()
    checkpoint.advance([event("a", 0)], OVERLAP)
    checkpoint.advance([event("b", 30)], OVERLAP)
    assert set(checkpoint.seen) == {"b"}


def test_watermark_never_moves_back():
    checkpoint = Checkpoint()
    checkpoint.advance([event("a", 10)], OVERLAP)
    checkpoint.advance([event("b", 5)], OVERLAP)
    assert checkpoint.watermark == T0 + timedelta(minutes=10)


def alerts(*ids: str) -> list[Alert]:
    return [Alert(event(i, n)) for n, i in enumerate(ids)]


def test_enqueue_is_idempotent_and_due_is_in_event_order():
    checkpoint = Checkpoint()
    routed = [("r", a) for a in reversed(alerts("a", "b", "c"))]
    checkpoint.enqueue(routed, T0)
    checkpoint.enqueue(routed, T0)
    due = checkpoint.due(T0)
    assert [e.alert.key for e in due["r"]] == ["a", "b", "c"]


def test_failed_backs_off_then_drops_after_max_attempts():
    policy = RetryPolicy(initial_backoff=10, max_backoff=40, max_attempts=3, max_age=86400)
    checkpoint = Checkpoint()
    checkpoint.enqueue([("r", a) for a in alerts("a")], T0)
    now = T0
    for attempt in (1, 2):
        dropped = checkpoint.failed(
            "r", ("a",), error="down", retryable=True, retry_after=None, now=now, policy=policy
        )
        assert dropped == []
        wait = (checkpoint.outbox[0].next_attempt_at - now).total_seconds()
        nominal = min(40, 10 * 2 ** (attempt - 1))
        assert nominal / 2 <= wait <= nominal
        assert checkpoint.due(now) == {}
        now = checkpoint.outbox[0].next_attempt_at
    dropped = checkpoint.failed(
        "r", ("a",), error="down", retryable=True, retry_after=None, now=now, policy=policy
    )
    assert [e.alert.key for e in dropped] == ["a"] and checkpoint.outbox == []


def test_permanent_failure_drops_at_once_and_retry_after_is_honoured():
    policy = RetryPolicy(initial_backoff=1, max_backoff=2)
    checkpoint = Checkpoint()
    checkpoint.enqueue([("r", a) for a in alerts("a", "b")], T0)
    checkpoint.failed(
        "r", ("b",), error="x", retryable=True, retry_after=600, now=T0, policy=policy
    )
    assert checkpoint.outbox[1].next_attempt_at == T0 + timedelta(seconds=600)
    dropped = checkpoint.failed(
        "r", ("a",), error="bad token", retryable=False, retry_after=None, now=T0, policy=policy
    )
    assert [e.alert.key for e in dropped] == ["a"]
    assert [e.alert.key for e in checkpoint.outbox] == ["b"]


def test_expire_and_defer():
    policy = RetryPolicy(max_age=3600)
    checkpoint = Checkpoint()
    checkpoint.enqueue([("r", a) for a in alerts("a")], T0)
    checkpoint.defer("r", ("a",), T0 + timedelta(seconds=30))
    assert checkpoint.outbox[0].attempts == 0
    assert checkpoint.due(T0 + timedelta(seconds=29)) == {}
    assert checkpoint.expire(T0 + timedelta(minutes=59), policy) == []
    assert len(checkpoint.expire(T0 + timedelta(hours=1), policy)) == 1


def test_round_trip_and_schema_errors():
    checkpoint = Checkpoint(api_order="asc")
    checkpoint.advance([event("a", 0)], OVERLAP)
    checkpoint.enqueue([("r", a) for a in alerts("a")], T0)
    again = Checkpoint.from_dict(checkpoint.to_dict(), where="here")
    assert again.to_dict() == checkpoint.to_dict()
    with pytest.raises(CheckpointError, match="here: unknown checkpoint schema 99"):
        Checkpoint.from_dict({**checkpoint.to_dict(), "schema": 99}, where="here")
    with pytest.raises(CheckpointError, match="malformed"):
        Checkpoint.from_dict({"schema": 1, "seen": 5, "outbox": []}, where="here")
