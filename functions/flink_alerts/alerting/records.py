"""Notification state as stored records, one per receiver plus one for incidents. Pure: no I/O.

- `ReceiverRecord`: the receiver's outbox (notices not yet delivered, each alert trimmed to what
  templates show), bounded: beyond MAX_PENDING the oldest fold into per-deployment counts that
  the next message reports; and the times of recent messages (a rate limit shared by runs).
- `AlertingRecord`: incidents, the notification log, and the event ids already planned per
  target, so events that arrive again after a crash are not counted twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from ..checkpoint.outbox import Outbox, OutboxEntry
from ..events import Alert, Batch, Target
from ..render import _FRAME, clip_bytes
from .incidents import Incident, Sent, Status
from .planner import Notice, State

MAX_PENDING = 200
ALERT_BYTES = 2048  # an alert as stored for delivery: headline, cause chain, top frames
INCIDENT_BYTES = 512  # an incident's latest alert: enough for a digest or resolved line
FRAMES_PER_EXCEPTION = 3
KEEP_APPLIED = timedelta(days=2)
KEEP_FIRING = timedelta(days=7)
# About 1 KB per incident (its trimmed alert and a log entry per route): together with the
# planned ids this keeps the alerting record under 1 MB (measured in tests/unit/test_records.py).
MAX_INCIDENTS = 600
MAX_APPLIED = 5000


def trim_message(text: str, limit: int) -> str:
    """Exception lines (the first and each `Caused by:`) with their top frames, then clipped."""
    kept, frames = [], 0
    for line in text.splitlines():
        if _FRAME.match(line):
            frames += 1
            if frames <= FRAMES_PER_EXCEPTION:
                kept.append(line)
        else:
            frames = 0
            kept.append(line)
    return clip_bytes("\n".join(kept), limit)


def trim(alert: Alert, limit: int = ALERT_BYTES) -> Alert:
    event = alert.event
    return replace(alert, event=replace(event, message=trim_message(event.message, limit)))


@dataclass
class Pending(OutboxEntry):
    """An outbox entry that came from a notice: it knows its message group and status."""

    id: str = ""
    group: str = ""
    status: str = Status.FIRING.value

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "id": self.id, "group": self.group, "status": self.status}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pending:
        base = OutboxEntry.from_dict(data)
        return cls(**base.__dict__, id=data["id"], group=data["group"], status=data["status"])

    @classmethod
    def of(cls, notice: Notice, now: datetime) -> Pending:
        alert = trim(notice.alert)
        extra = {"count": notice.count, "since": notice.since.isoformat() if notice.since else ""}
        alert = replace(alert, extra={**alert.extra, **extra})
        if notice.status is Status.RESOLVED:  # its own key: the firing notice may still wait
            alert = replace(alert, event=replace(alert.event, event_id=f"{alert.key}:resolved"))
        return cls(
            notice.receiver,
            alert,
            now,
            notice.not_before,
            id=notice.id,
            group=notice.group,
            status=notice.status.value,
        )


@dataclass
class ReceiverRecord(Outbox):
    name: str
    outbox: list[OutboxEntry] = field(default_factory=list)
    folded: dict[str, int] = field(default_factory=dict)  # deployment -> alerts folded away
    sent_at: list[float] = field(default_factory=list)  # epoch seconds of recent messages
    carried_by: str = ""  # the alert whose message reports the folded counts

    def stage(self, notices: list[Notice], now: datetime) -> int:
        """Add the notices not staged before (by id); returns how many were new."""
        staged = {getattr(entry, "id", "") for entry in self.outbox}
        new = [
            Pending.of(n, now) for n in notices if n.receiver == self.name and n.id not in staged
        ]
        self.outbox.extend(new)
        self._bound()
        return len(new)

    def _bound(self) -> None:
        excess = len(self.outbox) - MAX_PENDING
        if excess <= 0:
            return
        self.outbox.sort(key=lambda entry: entry.queued_at)
        for entry in self.outbox[:excess]:
            name = entry.alert.deployment_name or entry.alert.event.deployment_id or "other"
            self.folded[name] = self.folded.get(name, 0) + 1
        self.outbox = self.outbox[excess:]

    def batches(self, now: datetime) -> list[tuple[list[OutboxEntry], Batch]]:
        """Due entries per message group and status, oldest first; the first reports the folded."""
        groups: dict[tuple[str, str, tuple[str, ...]], list[OutboxEntry]] = {}
        for entry in self.due(now).get(self.name, []):
            key = (getattr(entry, "group", ""), getattr(entry, "status", "firing"), entry.only_to)
            groups.setdefault(key, []).append(entry)
        batches = []
        for (_, status, only_to), entries in groups.items():
            first = entries[0].alert.event
            target = Target(first.workspace, first.namespace)
            alerts = tuple(entry.alert for entry in entries)
            batch = Batch(self.name, target, alerts, status, now, only_to=only_to)
            batches.append((entries, batch))
        if batches and self.folded:
            entries, batch = batches[0]
            self.carried_by = entries[0].alert.key
            batches[0] = (entries, replace(batch, omitted=sum(self.folded.values())))
        return batches

    def delivered(self, receiver: str, alert_keys: tuple[str, ...]) -> None:
        super().delivered(receiver, alert_keys)
        if self.carried_by in alert_keys:
            self.folded, self.carried_by = {}, ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "outbox": [entry.to_dict() for entry in self.outbox],
            "folded": self.folded,
            "sent_at": self.sent_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReceiverRecord:
        return cls(
            name=data["name"],
            outbox=[Pending.from_dict(entry) for entry in data["outbox"]],
            folded=dict(data.get("folded") or {}),
            sent_at=[float(at) for at in data.get("sent_at") or []],
        )


@dataclass
class AlertingRecord:
    state: State = field(default_factory=State)
    applied: dict[str, str] = field(default_factory=dict)  # event key -> when it was planned
    receivers: list[str] = field(default_factory=list)  # every receiver notices were staged for

    def mark_applied(self, keys: list[str], now: datetime) -> None:
        self.applied.update(dict.fromkeys(keys, now.isoformat()))

    def mark_staged(self, receivers: list[str]) -> None:
        self.receivers = list(dict.fromkeys([*self.receivers, *receivers]))

    def prune(self, now: datetime, repeat_intervals: Mapping[str, float]) -> None:
        """Forget what cannot matter any more, so the record stays small (well under 1 MB).

        `repeat_intervals`: route path -> repeat_interval in seconds (a route no longer
        configured counts as 0). The rules, documented in the README:

        - a firing incident with no event nor notice for KEEP_FIRING (or its longest
          repeat_interval, if longer, so a due digest still goes out) is forgotten: a later
          failure is news again, and no resolved notice follows;
        - a resolved incident is forgotten once its longest repeat_interval has passed since
          its last event or notice (at once if no notice was sent for it);
        - beyond MAX_INCIDENTS, the quietest go first (resolved before firing), and beyond
          MAX_APPLIED planned event ids the oldest.
        """
        horizon = (now - KEEP_APPLIED).isoformat()
        applied = sorted(((at, key) for key, at in self.applied.items() if at >= horizon))
        self.applied = {key: at for at, key in applied[-MAX_APPLIED:]}
        incidents = self.state.incidents
        for fingerprint in self._expired(now, repeat_intervals):
            del incidents[fingerprint]
        by_quietness = sorted(
            incidents.values(), key=lambda i: (i.status is Status.FIRING, i.last_at)
        )
        for incident in by_quietness[: max(len(incidents) - MAX_INCIDENTS, 0)]:
            del incidents[incident.fingerprint]
        self.state.log = {key: s for key, s in self.state.log.items() if key[1] in incidents}

    def _expired(self, now: datetime, repeat_intervals: Mapping[str, float]) -> list[str]:
        repeat: dict[str, float] = {}
        last_notice: dict[str, datetime] = {}
        for (path, fingerprint), sent in self.state.log.items():
            repeat[fingerprint] = max(repeat.get(fingerprint, 0.0), repeat_intervals.get(path, 0))
            last_notice[fingerprint] = max(last_notice.get(fingerprint, sent.at), sent.at)
        expired = []
        for fingerprint, incident in self.state.incidents.items():
            # Our clock counts too: a backlog of old events must not be forgotten as it arrives.
            quiet_since = max(incident.last_at, last_notice.get(fingerprint, incident.last_at))
            keep = timedelta(seconds=repeat.get(fingerprint, 0.0))
            if incident.status is Status.FIRING:
                keep = max(keep, KEEP_FIRING)
            if now - quiet_since >= keep:
                expired.append(fingerprint)
        return expired

    def to_dict(self) -> dict[str, Any]:
        return {
            "incidents": [_incident_dict(i) for i in self.state.incidents.values()],
            "log": [_sent_dict(path, fp, sent) for (path, fp), sent in self.state.log.items()],
            "applied": self.applied,
            "receivers": self.receivers,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlertingRecord:
        incidents = [_incident(raw) for raw in data.get("incidents", [])]
        log = {(raw["route"], raw["fingerprint"]): _sent(raw) for raw in data.get("log", [])}
        state = State({incident.fingerprint: incident for incident in incidents}, log)
        applied, receivers = dict(data.get("applied") or {}), list(data.get("receivers") or [])
        return cls(state, applied, receivers)


def _incident_dict(incident: Incident) -> dict[str, Any]:
    return {
        "fingerprint": incident.fingerprint,
        "status": incident.status.value,
        "started_at": incident.started_at.isoformat(),
        "last_at": incident.last_at.isoformat(),
        "events": incident.events,
        "last": trim(incident.last, INCIDENT_BYTES).to_dict(),
    }


def _incident(raw: dict[str, Any]) -> Incident:
    return Incident(
        raw["fingerprint"],
        Status(raw["status"]),
        datetime.fromisoformat(raw["started_at"]),
        datetime.fromisoformat(raw["last_at"]),
        int(raw["events"]),
        Alert.from_dict(raw["last"]),
    )


def _sent_dict(path: str, fingerprint: str, sent: Sent) -> dict[str, Any]:
    return {
        "route": path,
        "fingerprint": fingerprint,
        "status": sent.status.value,
        "at": sent.at.isoformat(),
        "events": sent.events,
        "receivers": list(sent.receivers),
    }


def _sent(raw: dict[str, Any]) -> Sent:
    return Sent(
        Status(raw["status"]),
        datetime.fromisoformat(raw["at"]),
        int(raw["events"]),
        tuple(raw["receivers"]),
    )
