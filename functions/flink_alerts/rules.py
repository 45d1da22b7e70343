"""Which events are failures, and how severe. Pure functions over FlinkEvent."""

from __future__ import annotations

import re

from .events import Alert, FlinkEvent

FAILURE = re.compile(r"fail|error|exception|restart|crash|outofmemory", re.IGNORECASE)
CRITICAL = re.compile(r"fail|error|exception|crash|outofmemory", re.IGNORECASE)
# "... from STARTING to RUNNING is completed", "-> RUNNING", "状态变为 RUNNING".
TARGET_STATE = re.compile(r"(?:\bto\b|->|→|变为)\s*[\"'`]?([A-Z][A-Z_]+)\b")
# The state a transition leaves says nothing about now: "from FAILED to STARTING" is a recovery.
SOURCE_STATE = re.compile(r"\bfrom\s+[\"'`]?[A-Z][A-Z_]+\b[\"'`]?")


def target_state(event: FlinkEvent) -> str | None:
    """The state a transition event moves to, when its message names one."""
    states = TARGET_STATE.findall(event.message)
    return states[-1] if states else None


def is_failure(event: FlinkEvent) -> bool:
    if target_state(event) == "RUNNING":
        return False
    message = SOURCE_STATE.sub("", event.message)
    return bool(FAILURE.search(event.event_name) or FAILURE.search(message))


def severity(event: FlinkEvent) -> str:
    text = f"{event.event_name} {SOURCE_STATE.sub('', event.message)}"
    return "critical" if CRITICAL.search(text) else "warning"


# Events the bridge itself makes: a backlog cut by max_pages, an event that could not be read.
SYNTHETIC = {"EVENTS_NOT_SHOWN": "backlog", "UNREADABLE_EVENT": "unreadable"}


def classify(events: list[FlinkEvent]) -> list[Alert]:
    """The default rule: failure-looking events become alerts, in the order given."""
    alerts = []
    for event in events:
        if event.event_name in SYNTHETIC:
            alerts.append(Alert(event, severity="warning", rule=SYNTHETIC[event.event_name]))
        elif is_failure(event):
            alerts.append(Alert(event, severity=severity(event)))
    return alerts
