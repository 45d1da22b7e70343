from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flink_alerts.alerting.matchers import Subject
from flink_alerts.alerting.silences import describe, silence_for
from tests.alerting_data import event, silences

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at_shanghai(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """2026-03-02 is a Monday; `day` counts from it."""
    local = datetime(2026, 3, 2 + day, hour, minute, second, tzinfo=SHANGHAI)
    return local.astimezone(timezone.utc)


def silenced(raw, now, subject=None) -> bool:
    return silence_for(silences(raw), subject or Subject(event()), now) is not None


NIGHTLY = {"weekdays": ["mon"], "between": "22:00-02:00", "timezone": "Asia/Shanghai"}
DAYTIME = {"weekdays": ["mon", "tue"], "between": "01:00-03:00", "timezone": "Asia/Shanghai"}


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (at_shanghai(0, 0, 59, 59), False),
        (at_shanghai(0, 1, 0), True),  # start inclusive
        (at_shanghai(0, 2, 59, 59), True),
        (at_shanghai(0, 3, 0), False),  # end exclusive
        (at_shanghai(1, 1, 30), True),
        (at_shanghai(2, 1, 30), False),  # Wednesday
        (at_shanghai(-1, 1, 30), False),  # Sunday
    ],
)
def test_recurring_window_edges_in_shanghai(when, expected):
    assert silenced([DAYTIME], when) is expected


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (at_shanghai(0, 21, 59, 59), False),
        (at_shanghai(0, 22, 0), True),  # Monday evening
        (at_shanghai(0, 23, 59, 59), True),
        (at_shanghai(1, 0, 0), True),  # after midnight: still Monday's window
        (at_shanghai(1, 1, 59, 59), True),
        (at_shanghai(1, 2, 0), False),
        (at_shanghai(1, 22, 30), False),  # Tuesday evening is not in the list
        (at_shanghai(0, 0, 30), False),  # Monday early morning belongs to Sunday's window
    ],
)
def test_window_across_midnight(when, expected):
    assert silenced([NIGHTLY], when) is expected


def test_the_window_follows_the_time_zone_not_utc():
    # 01:30 in Shanghai is 17:30 UTC the day before.
    assert at_shanghai(0, 1, 30).hour == 17
    assert silenced([DAYTIME], at_shanghai(0, 1, 30))
    utc_window = {**DAYTIME, "timezone": "UTC"}
    assert not silenced([utc_window], at_shanghai(0, 1, 30))


def test_absolute_window_edges_and_naive_times_in_the_given_zone():
    raw = {
        "starts_at": "2026-03-02T01:00:00",
        "ends_at": "2026-03-02T03:00:00",
        "timezone": "Asia/Shanghai",
        "comment": "upgrade",
    }
    assert not silenced([raw], at_shanghai(0, 0, 59, 59))
    assert silenced([raw], at_shanghai(0, 1, 0))
    assert not silenced([raw], at_shanghai(0, 3, 0))
    assert "(upgrade)" in describe(silences([raw])[0])


def test_only_matching_alerts_are_silenced():
    raw = {**DAYTIME, "match": {"namespace": "dev"}}
    now = at_shanghai(0, 1, 30)
    assert silenced([raw], now, Subject(event(namespace="dev")))
    assert not silenced([raw], now, Subject(event(namespace="prod")))


@given(minutes=st.integers(0, 7 * 24 * 60 - 1))
def test_across_midnight_equals_its_two_halves(minutes):
    now = at_shanghai(0, 0) + timedelta(minutes=minutes)
    halves = [
        {"weekdays": ["mon"], "between": "22:00-24:00", "timezone": "Asia/Shanghai"},
        {"weekdays": ["tue"], "between": "00:00-02:00", "timezone": "Asia/Shanghai"},
    ]
    assert silenced([NIGHTLY], now) == silenced(halves, now)
