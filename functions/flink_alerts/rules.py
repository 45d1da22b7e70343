"""Which events are failures, and how severe. Pure functions over FlinkEvent."""

from __future__ import annotations

import re

from .events import Alert, FlinkEvent

FAILURE = re.compile(r"fail|error|exception|restart|crash|outofmemory", re.IGNORECASE)
CRITICAL = re.compile(r"fail|error|exception|crash|outofmemory", re.IGNORECASE)
# "... from STARTING to RUNNING", "-> RUNNING", "状态变为 RUNNING": a job coming up is good news.
TO_RUNNING = re.compile(r"(?:\bto\b|->|→|:|：|为)\s*[\"'`]?RUNNING\b[\"'`]?\s*\.?\s*$|^RUNNING$", re.I)


def is_transition_to_running(event: FlinkEvent) -> bool:
    return bool(TO_RUNNING.search(event.message.strip()))


def is_failure(event: FlinkEvent) -> bool:
    if is_transition_to_running(event):
        return False
    return bool(FAILURE.search(event.event_name) or FAILURE.search(event.message))


def severity(event: FlinkEvent) -> str:
    text = f"{event.event_name} {event.message}"
    return "critical" if CRITICAL.search(text) else "warning"


def classify(events: list[FlinkEvent]) -> list[Alert]:
    """The default rule: failure-looking events become alerts, in the order given."""
    return [Alert(event, severity=severity(event)) for event in events if is_failure(event)]
