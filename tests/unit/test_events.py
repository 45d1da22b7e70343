"""createdAt arrives in an undocumented format: every plausible one must become aware UTC."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from flink_alerts.errors import EventParseError
from flink_alerts.events import FlinkEvent, parse_created_at

MOMENT = datetime(2024, 3, 1, 8, 30, 15, 123000, tzinfo=timezone.utc)
MS = 1709281815123


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (MS, MOMENT),
        (str(MS), MOMENT),
        (f" {MS} ", MOMENT),
        (float(MS), MOMENT),
        (1709281815, MOMENT.replace(microsecond=0)),
        ("1709281815", MOMENT.replace(microsecond=0)),
        (1709281815.123, MOMENT),
        ("1709281815.5", MOMENT.replace(microsecond=500000)),
        (0, datetime(1970, 1, 1, tzinfo=timezone.utc)),
    ],
)
def test_epoch_numbers(value: object, expected: datetime) -> None:
    parsed = parse_created_at(value)
    assert parsed == expected
    assert parsed.tzinfo is not None and parsed.utcoffset().total_seconds() == 0


def test_epoch_milliseconds_are_exact() -> None:
    for ms in (MS, MS + 1, 1700000000001, 1999999999999, 1000000000007):
        parsed = parse_created_at(ms)
        assert round(parsed.timestamp() * 1000) == ms
        assert parsed.microsecond % 1000 == 0


@pytest.mark.parametrize(
    "value",
    [
        "2024-03-01T08:30:15.123Z",
        "2024-03-01T08:30:15.123z",
        "2024-03-01T08:30:15.123+00:00",
        "2024-03-01T16:30:15.123+08:00",
        "2024-03-01T16:30:15.123+0800",
        "2024-03-01T16:30:15.123+08",
        "2024-03-01T03:30:15.123-05:00",
        "2024-03-01T08:30:15.123",  # naive: taken as UTC
        "2024-03-01 08:30:15.123",
        "2024-03-01 16:30:15.123+08:00",
        "2024-03-01T08:30:15.123000Z",
        "2024-03-01T08:30:15.123456789Z",  # nanoseconds (Java/Go) are cut to microseconds
        "2024-03-01T08:30:15.1230Z",
        " 2024-03-01T08:30:15.123Z ",
    ],
)
def test_iso_8601(value: str) -> None:
    parsed = parse_created_at(value)
    assert parsed.replace(microsecond=parsed.microsecond // 1000 * 1000) == MOMENT
    assert parsed.tzinfo == timezone.utc


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-01T08:30:15Z", MOMENT.replace(microsecond=0)),
        ("2024-03-01T08:30:15.1Z", MOMENT.replace(microsecond=100000)),
        ("2024-03-01T08:30Z", MOMENT.replace(second=0, microsecond=0)),
    ],
)
def test_iso_8601_precision(value: str, expected: datetime) -> None:
    assert parse_created_at(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        "",
        "   ",
        "yesterday",
        "2024-13-01T00:00:00Z",
        "2024-03-01T25:00:00Z",
        "12:30",
        "NaN",
        float("nan"),
        float("inf"),
        10**30,
        [MS],
        {"ms": MS},
    ],
)
def test_garbage_is_a_typed_error_naming_the_event(value: object) -> None:
    with pytest.raises(EventParseError) as caught:
        parse_created_at(value, event_id="ev-42")
    assert "ev-42" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_from_api_names_the_event_with_a_bad_created_at() -> None:
    raw = {"eventId": "ev-7", "eventName": "STATE_TRANSITION_IS_COMPLETED", "createdAt": "soon"}
    with pytest.raises(EventParseError, match="ev-7"):
        FlinkEvent.from_api(raw, workspace="w", namespace="n")


@pytest.mark.parametrize("value", [MS, str(MS), "2024-03-01T16:30:15.123+08:00"])
def test_from_api_normalises_every_format_to_the_same_event(value: object) -> None:
    raw = {"eventId": "ev-1", "eventName": "X", "createdAt": value, "deploymentId": "d"}
    event = FlinkEvent.from_api(raw, workspace="w", namespace="n")
    assert event.created_at == MOMENT
    assert (event.workspace, event.namespace) == ("w", "n")
