"""The built-in rules' tests: which events are failures, recoveries, and how severe. Pure."""

from __future__ import annotations

import re

from .events import FlinkEvent

# A transition that did not happen is a failure even when it names RUNNING as its goal.
NOT_DONE = r"cannot|can't|unable to|could not|did not|timed? ?out|timeout"
FAILURE = re.compile(rf"fail|error|exception|restart|crash|outofmemory|{NOT_DONE}", re.IGNORECASE)
CRITICAL = re.compile(rf"fail|error|exception|crash|outofmemory|{NOT_DONE}", re.IGNORECASE)
# "... from STARTING to RUNNING is completed", "-> RUNNING", "状态变为 RUNNING".
TARGET_STATE = re.compile(r"(?:\bto\b|->|→|变为)\s*[\"'`]?([A-Z][A-Z_]+)\b")
# The state a transition leaves says nothing about now: "from FAILED to STARTING" is a recovery.
SOURCE_STATE = re.compile(r"\bfrom\s+[\"'`]?[A-Z][A-Z_]+\b[\"'`]?")
RESTART = re.compile(r"\brestart(?:s|ed|ing)?\b", re.IGNORECASE)
# Events that ingestion makes up for things to alert about (a backlog, a poison event).
SYNTHETIC = ("EVENTS_NOT_SHOWN", "UNREADABLE_EVENT")


def target_state(event: FlinkEvent) -> str | None:
    """The state a transition event moves to, when its message names one."""
    states = TARGET_STATE.findall(event.message)
    return states[-1] if states else None


def is_recovery(event: FlinkEvent) -> bool:
    """The deployment reached RUNNING: not a failure named so, not a transition that failed."""
    if target_state(event) != "RUNNING" or FAILURE.search(event.event_name):
        return False
    return not re.search(NOT_DONE, event.message, re.IGNORECASE)


def is_failure(event: FlinkEvent) -> bool:
    if is_recovery(event):
        return False
    message = SOURCE_STATE.sub("", event.message)
    return bool(FAILURE.search(event.event_name) or FAILURE.search(message))


def is_restart(event: FlinkEvent) -> bool:
    """The job restarts by itself: its own incident, so a terminal failure of the same deployment
    is not folded into a restart loop's digest but alerted at once."""
    if target_state(event) == "FAILED" or not is_failure(event):
        return False
    if RESTART.search(event.event_name.replace("_", " ")):
        return True
    return "FAIL" not in event.event_name.upper() and bool(RESTART.search(event.message[:300]))


def severity(event: FlinkEvent) -> str:
    text = f"{event.event_name} {SOURCE_STATE.sub('', event.message)}"
    return "critical" if CRITICAL.search(text) else "warning"
