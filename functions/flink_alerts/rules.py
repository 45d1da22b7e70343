"""The built-in rules' tests: which events are failures, recoveries, and how severe. Pure."""

from __future__ import annotations

import re
from functools import lru_cache

from .events import FlinkEvent


class Words:
    """A case-insensitive pattern of plain words (no classes, no `\\b`), searched fast.

    `re` cannot skip ahead by first letter when it ignores case, which makes a search of an
    event's message several microseconds. ASCII text (nearly all of it) is therefore lower-cased
    and searched case-sensitively: for ASCII text that is the same match. Other text is searched
    with re.IGNORECASE, whose Unicode case rules `str.lower()` does not repeat (e.g. `ſ` is `s`).
    """

    def __init__(self, pattern: str) -> None:
        assert pattern == pattern.lower(), "spell the words in lower case"
        self.lower = re.compile(pattern)
        self.any_case = re.compile(pattern, re.IGNORECASE)

    def search(self, text: str) -> bool:
        if text.isascii():
            return self.lower.search(text.lower()) is not None
        return self.any_case.search(text) is not None


# A transition that did not happen is a failure even when it names RUNNING as its goal.
NOT_DONE = r"cannot|can't|unable to|could not|did not|timed? ?out|timeout"
FAILURE = Words(rf"fail|error|exception|restart|crash|outofmemory|{NOT_DONE}")
CRITICAL = Words(rf"fail|error|exception|crash|outofmemory|{NOT_DONE}")
TRANSITION_FAILED = Words(NOT_DONE)
# "... from STARTING to RUNNING is completed", "-> RUNNING", "状态变为 RUNNING".
TARGET_STATE = re.compile(r"(?:\bto\b|->|→|变为)\s*[\"'`]?([A-Z][A-Z_]+)\b")
# The state a transition leaves says nothing about now: "from FAILED to STARTING" is a recovery.
SOURCE_STATE = re.compile(r"\bfrom\s+[\"'`]?[A-Z][A-Z_]+\b[\"'`]?")
RESTART = re.compile(r"\brestart(?:s|ed|ing)?\b", re.IGNORECASE)
# Events that ingestion makes up for things to alert about (a backlog, a poison event).
SYNTHETIC = ("EVENTS_NOT_SHOWN", "UNREADABLE_EVENT")


def target_state(event: FlinkEvent) -> str | None:
    """The state a transition event moves to, when its message names one."""
    return _target_state(event.message)


def is_recovery(event: FlinkEvent) -> bool:
    """The deployment reached RUNNING: not a failure named so, not a transition that failed."""
    return _is_recovery(event.event_name, event.message)


def is_failure(event: FlinkEvent) -> bool:
    return not is_recovery(event) and looks_failed(event)


def looks_failed(event: FlinkEvent) -> bool:
    """`is_failure` for an event already known not to be a recovery."""
    return _looks_failed(event.event_name, event.message)


def is_restart(event: FlinkEvent) -> bool:
    """The job restarts by itself: its own incident, so a terminal failure of the same deployment
    is not folded into a restart loop's digest but alerted at once."""
    if target_state(event) == "FAILED" or not is_failure(event):
        return False
    if RESTART.search(event.event_name.replace("_", " ")):
        return True
    return "FAIL" not in event.event_name.upper() and bool(RESTART.search(event.message[:300]))


def severity(event: FlinkEvent) -> str:
    return _severity(event.event_name, event.message)


# The tests look at an event's name and message only, and events repeat those (a backlog is
# mostly the same few transitions and traces): each distinct pair is judged once. The caches are
# bounded: distinct texts cost no more than before, and each keeps at most 256 messages alive
# (a few MB even if every one were a long trace).
CACHED = 256


def _target_state(message: str) -> str | None:
    states = TARGET_STATE.findall(message)
    return states[-1] if states else None


@lru_cache(maxsize=CACHED)
def _is_recovery(name: str, message: str) -> bool:
    if "RUNNING" not in message:  # cheap: most events are not about RUNNING
        return False
    if _target_state(message) != "RUNNING" or FAILURE.search(name):
        return False
    return not TRANSITION_FAILED.search(message)


@lru_cache(maxsize=CACHED)
def _looks_failed(name: str, message: str) -> bool:
    return FAILURE.search(name) or FAILURE.search(SOURCE_STATE.sub("", message))


@lru_cache(maxsize=CACHED)
def _severity(name: str, message: str) -> str:
    text = f"{name} {SOURCE_STATE.sub('', message)}"
    return "critical" if CRITICAL.search(text) else "warning"
