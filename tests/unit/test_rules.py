import re
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flink_alerts import rules
from flink_alerts.events import FlinkEvent

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def event(name: str, message: str = "") -> FlinkEvent:
    return FlinkEvent("e", name, NOW, "ws", "ns", message=message)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("JOB_FAILED", ""),
        ("STATE_TRANSITION_IS_COMPLETED", "Deployment transitioned from RUNNING to FAILED"),
        ("X", "java.lang.OutOfMemoryError: Java heap space"),
        ("X", "Job is restarting after an Exception"),
        ("X", "TaskManager crashed"),
        ("X", "ERROR in checkpoint"),
        (
            "STATE_TRANSITION_IS_COMPLETED",
            "The state transition of deployment d from RUNNING to FAILED is completed.",
        ),
    ],
)
def test_failures_are_recognised(name: str, message: str):
    assert rules.is_failure(event(name, message))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("STATE_TRANSITION_IS_COMPLETED", "Deployment transitioned from STARTING to RUNNING"),
        ("STATE_TRANSITION_IS_COMPLETED", "recovered after failover -> RUNNING"),
        ("STATE_TRANSITION_IS_COMPLETED", "作业状态变为 RUNNING"),
        ("STATE_TRANSITION_IS_COMPLETED", "Deployment transitioned from RUNNING to CANCELLED"),
        (
            "STATE_TRANSITION_IS_COMPLETED",
            "The state transition of deployment d from FAILED to STARTING is completed.",
        ),
        (
            "STATE_TRANSITION_IS_COMPLETED",
            "The state transition of deployment d from STARTING to RUNNING is completed.",
        ),
    ],
)
def test_non_failures_are_ignored(name: str, message: str):
    assert not rules.is_failure(event(name, message))


def test_severity():
    assert rules.severity(event("JOB_FAILED")) == "critical"
    assert rules.severity(event("X", "restarting")) == "warning"


@pytest.mark.parametrize(
    ("name", "message", "restart"),
    [
        ("JOB_RESTARTING", "Job is restarting: TaskManager lost", True),
        ("X", "restarting after a failure", True),
        ("JOB_FAILED", "Job failed: Recovery is suppressed by NoRestartBackoffTimeStrategy", False),
        ("STATE_TRANSITION_IS_COMPLETED", "from RESTARTING to FAILED is completed", False),
    ],
)
def test_a_restart_is_told_from_a_terminal_failure(name: str, message: str, restart: bool):
    assert rules.is_restart(event(name, message)) is restart


# Words the patterns know, spelled oddly, among other text (ASCII or not).
_PIECES = st.sampled_from(
    [
        "fail",
        "FaIl",
        "ERROR",
        "Exception",
        "cAn'T",
        "timed out",
        "TIMEOUT",
        "time out",
        "unable to",
        "outofmemory",
        "restart",
        "crash",
        "ſ",
        "K",
        "İ",
        "ı",
        "craſh",
        "exceptıon",
        " ",
        "\n",
        "é",
    ]
)
_TEXT = st.lists(st.one_of(_PIECES, st.text(max_size=8)), max_size=8).map("".join)


@given(_TEXT)
@settings(max_examples=500)
def test_words_match_exactly_what_the_case_insensitive_pattern_matches(text: str):
    for words in (rules.FAILURE, rules.CRITICAL, rules.TRANSITION_FAILED):
        plain = re.compile(words.lower.pattern, re.IGNORECASE)
        assert words.search(text) == bool(plain.search(text))
