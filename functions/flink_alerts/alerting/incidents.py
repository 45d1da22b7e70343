"""Incidents: alerts with an identity, and the one decision "notify or not, and why".

An incident is what alerts with the same fingerprint are about; it is `firing` until the
deployment is seen running again, then `resolved`. The notification log remembers, per route
and incident, what was last sent, when, and how many events that covered (Alertmanager's nflog).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from ..events import Alert
from .routing import Route


class Status(str, Enum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Reason(str, Enum):
    NEW = "new"
    REPEAT_DUE = "repeat due"
    RESOLVED = "resolved"
    FOLDED = "folded"
    SILENCED = "silenced"
    UNCHANGED = "unchanged"  # nothing happened since the last notice
    NOT_HEARD = "not heard"  # resolved, but nobody was told it fired (or send_resolved is off)


NOTIFY = frozenset({Reason.NEW, Reason.REPEAT_DUE, Reason.RESOLVED})


@dataclass
class Incident:
    fingerprint: str
    status: Status
    started_at: datetime
    last_at: datetime
    events: int  # events since the incident (re)opened
    last: Alert  # the latest event, what a message shows

    @property
    def deployment_key(self) -> tuple[str, str, str]:
        event = self.last.event
        return event.workspace, event.namespace, event.deployment_id

    def add(self, alert: Alert) -> None:
        if self.status is Status.RESOLVED:
            self.status, self.started_at, self.events = Status.FIRING, alert.event.created_at, 0
        self.events += 1
        self.last_at = max(self.last_at, alert.event.created_at)
        self.last = alert

    @classmethod
    def open(cls, fingerprint: str, alert: Alert) -> Incident:
        at = alert.event.created_at
        return cls(fingerprint, Status.FIRING, at, at, 1, alert)


@dataclass(frozen=True)
class Sent:
    """The last notice for one incident on one route."""

    status: Status
    at: datetime
    events: int  # the incident's event count that notice covered
    receivers: tuple[str, ...]


@dataclass(frozen=True)
class Decision:
    reason: Reason
    count: int = 0  # events the notice covers (for "restarted 7 times since ...")

    @property
    def notify(self) -> bool:
        return self.reason in NOTIFY


def decide(
    incident: Incident, sent: Sent | None, route: Route, *, silenced: bool, now: datetime
) -> Decision:
    """Whether `route` tells its receivers about `incident` now, and why (pure)."""
    heard_firing = sent is not None and sent.status is Status.FIRING
    if incident.status is Status.RESOLVED:
        if not heard_firing or not route.send_resolved:
            return Decision(Reason.NOT_HEARD)
        return Decision(Reason.SILENCED if silenced else Reason.RESOLVED)
    if not heard_firing:
        return Decision(Reason.SILENCED) if silenced else Decision(Reason.NEW, incident.events)
    unsent = incident.events - sent.events
    if unsent <= 0:
        return Decision(Reason.UNCHANGED)
    if silenced:
        return Decision(Reason.SILENCED)
    if (now - sent.at).total_seconds() < route.repeat_interval:
        return Decision(Reason.FOLDED)
    return Decision(Reason.REPEAT_DUE, unsent)
