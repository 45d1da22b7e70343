from datetime import datetime, timedelta, timezone

import pytest

from flink_alerts.checkpoint.model import Checkpoint, RetryPolicy, StreamState
from flink_alerts.errors import CheckpointError
from flink_alerts.events import Alert, FlinkEvent

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)
OVERLAP = timedelta(minutes=10)


def event(event_id: str, minutes: float) -> FlinkEvent:
    return FlinkEvent(event_id, "JOB_FAILED", T0 + timedelta(minutes=minutes), "ws", "ns", "d1")


def test_a_stream_compares_by_id_at_or_above_its_floor():
    stream = StreamState(floor=T0, seen={"b": T0 + timedelta(minutes=5)})
    assert not stream.is_new(event("b", 5))
    assert stream.is_new(event("c", 5))  # same timestamp, other id
    assert stream.is_new(event("at-floor", 0))
    assert not stream.is_new(event("old", -1))  # below the boundary: handled or skipped
    assert StreamState().is_new(event("a", -1000))  # never read: everything counts


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
    checkpoint = Checkpoint()
    checkpoint.stream("").seen["a"] = T0
    checkpoint.stream("dep").floor = T0
    checkpoint.enqueue([("r", a) for a in alerts("a")], T0)
    again = Checkpoint.from_dict(checkpoint.to_dict(), where="here")
    assert again.to_dict() == checkpoint.to_dict()
    assert again.stream("dep").floor == T0 and again.stream("").seen == {"a": T0}
    with pytest.raises(CheckpointError, match="here: unknown checkpoint schema 99"):
        Checkpoint.from_dict({**checkpoint.to_dict(), "schema": 99}, where="here")
    with pytest.raises(CheckpointError, match="malformed"):
        Checkpoint.from_dict({"schema": 2, "streams": 5, "outbox": []}, where="here")


def test_a_schema_1_checkpoint_keeps_its_boundary():
    v1 = {
        "schema": 1,
        "watermark": T0.isoformat(),
        "seen": {"a": T0.isoformat()},
        "outbox": [],
        "api": {"order": "asc"},
    }
    stream = Checkpoint.from_dict(v1, where="here").stream("")
    assert stream.floor == T0 - timedelta(minutes=10)
    assert stream.seen == {"a": T0} and stream.order == "asc" and stream.total is None


@pytest.mark.parametrize(
    "edit, problem",
    [
        ({"streams": {"": {"floor": "2026-11-26T08:00:00", "seen": {}}}}, "floor .* no time zone"),
        (
            {"streams": {"": {"seen": {"a": "yesterday"}}}},
            "seen holds .yesterday., not epoch milliseconds",
        ),
        ({"streams": {"": {}}}, "missing key 'seen'"),
    ],
)
def test_a_hand_edited_checkpoint_says_what_is_wrong_and_how_to_recover(edit, problem):
    with pytest.raises(CheckpointError, match=f"here: malformed checkpoint: {problem}.*reset"):
        Checkpoint.from_dict({"schema": 2, "outbox": [], **edit}, where="here")
