"""The one model of a Flink event, parsed once at the edge, and of an alert built from it."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from sys import intern
from typing import Any

from .errors import EventParseError

_NUMERIC = re.compile(r"^-?\d+(\.\d+)?$")
# Epoch values above this are milliseconds (1e11 s is the year 5138; 1e11 ms is 1973).
_MS_THRESHOLD = 100_000_000_000
_ISO_CLOCK = re.compile(r"(\d{2}:\d{2}(?::\d{2})?)(?:[.,](\d+))?([Zz]|[+-]\d{2}(?::?\d{2})?)?")


def parse_created_at(value: Any, *, event_id: str = "?") -> datetime:
    """Normalise createdAt (epoch ms, epoch s, numeric string or ISO-8601) to an aware UTC datetime."""
    if isinstance(value, bool) or value is None:
        raise EventParseError(f"event {event_id}: createdAt is missing or not a time: {value!r}")
    if isinstance(value, str) and _NUMERIC.match(value.strip()):
        value = float(value.strip())
    if isinstance(value, (int, float)):
        seconds = value / 1000 if abs(value) >= _MS_THRESHOLD else value
        try:
            return datetime.fromtimestamp(seconds, tz=timezone.utc)
        except (OverflowError, OSError, ValueError) as exc:
            raise EventParseError(f"event {event_id}: createdAt out of range: {value!r}") from exc
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(_normalise_iso(value))
        except ValueError as exc:
            raise EventParseError(f"event {event_id}: createdAt is not a time: {value!r}") from exc
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.astimezone(timezone.utc)
    raise EventParseError(f"event {event_id}: createdAt has unexpected type {type(value).__name__}")


def _normalise_iso(value: str) -> str:
    """Spell ISO-8601 the way Python 3.10's fromisoformat accepts: `T`, 6 fraction digits
    (Java and Go send 1-9), `+HH:MM` offsets (`Z`, `+0800` and `+08` also occur)."""
    text = value.strip()
    date, _, clock = text.replace(" ", "T", 1).partition("T")
    match = _ISO_CLOCK.fullmatch(clock)
    if not match:
        return text
    hours_minutes, fraction, zone = match.groups()
    if fraction:
        hours_minutes += "." + (fraction + "000000")[:6]
    if zone and zone.upper() == "Z":
        zone = "+00:00"
    elif zone:
        zone = f"{zone[:3]}:{zone[3:].lstrip(':') or '00'}"
    return f"{date}T{hours_minutes}{zone or ''}"


UNREADABLE = "UNREADABLE_EVENT"
_RAW_CLIP = 1000
_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_text(text: str) -> str:
    """Text that can always be encoded: lone surrogates (a truncated emoji) become U+FFFD."""
    if text.isascii() or not _SURROGATE.search(text):
        return text
    return _SURROGATE.sub("\ufffd", text)


def _text(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if type(value) is str and value.isascii():  # the usual case, and nothing to check
        return value
    if value is None:
        return ""
    return valid_text(value if type(value) is str else str(value))


@dataclass(frozen=True, slots=True)
class FlinkEvent:
    event_id: str
    event_name: str
    created_at: datetime
    workspace: str
    namespace: str
    deployment_id: str = ""
    job_id: str = ""
    message: str = ""
    # Set at the edge when the event is odd (unreadable, dated in the future); shown in messages.
    note: str = ""

    @classmethod
    def from_api(cls, raw: Any, *, workspace: str = "", namespace: str = "") -> FlinkEvent:
        """Parse one element of GetEvents' `data`; the target fills workspace/namespace if absent."""
        if not isinstance(raw, dict):
            raise EventParseError(f"event is not an object: {type(raw).__name__}")
        event_id = _text(raw, "eventId")
        if not event_id:
            raise EventParseError(f"event without eventId: {sorted(raw)}")
        # Names and ids repeat from event to event: `intern` keeps one copy of each value, not
        # one per event, which keeps a 100,000-event backlog small.
        return cls(
            event_id=event_id,
            event_name=intern(_text(raw, "eventName")),
            created_at=parse_created_at(raw.get("createdAt"), event_id=event_id),
            workspace=intern(_text(raw, "workspace")) or workspace,
            namespace=intern(_text(raw, "namespace")) or namespace,
            deployment_id=intern(_text(raw, "deploymentId")),
            job_id=intern(_text(raw, "jobId")),
            message=_text(raw, "message"),
        )

    @classmethod
    def unreadable(
        cls, raw: Any, reason: str, *, read_at: datetime, workspace: str, namespace: str
    ) -> FlinkEvent:
        """A stand-in for an event that cannot be parsed: alerted once with what is known."""
        fields = raw if isinstance(raw, dict) else {}
        text = valid_text(json.dumps(raw, ensure_ascii=False, sort_keys=True, default=str))
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        return cls(
            event_id=_text(fields, "eventId") or f"unreadable:{digest}",
            event_name=UNREADABLE,
            created_at=read_at,
            workspace=_text(fields, "workspace") or workspace,
            namespace=_text(fields, "namespace") or namespace,
            deployment_id=_text(fields, "deploymentId"),
            job_id=_text(fields, "jobId"),
            message=f"{_text(fields, 'eventName') or 'event'} could not be read: {text[:_RAW_CLIP]}",
            note=valid_text(reason),
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        if not self.note:
            del data["note"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FlinkEvent:
        return cls(**{**data, "created_at": datetime.fromisoformat(data["created_at"])})

    def to_api_json(self) -> dict[str, Any]:
        """The event as the API spells it (for `flink-alerts events` and replay files)."""
        return {
            "eventId": self.event_id,
            "eventName": self.event_name,
            "createdAt": self.created_at.isoformat().replace("+00:00", "Z"),
            "deploymentId": self.deployment_id,
            "jobId": self.job_id,
            "message": self.message,
            "namespace": self.namespace,
            "workspace": self.workspace,
        }


def parse_event(raw: Any, target: Target, read_at: datetime) -> FlinkEvent:
    """Parse one element of GetEvents' `data`; what cannot be parsed becomes an
    UNREADABLE_EVENT stand-in, so one bad event never blocks the events around it."""
    try:
        return FlinkEvent.from_api(raw, workspace=target.workspace, namespace=target.namespace)
    except EventParseError as exc:
        return FlinkEvent.unreadable(
            raw, str(exc), read_at=read_at, workspace=target.workspace, namespace=target.namespace
        )


@dataclass(frozen=True)
class EventsPage:
    """One GetEvents page. `total` is None when totalSize is missing or contradicts the data
    (then only a page that is not full marks the end). `server_time`: the response's Date."""

    events: list[FlinkEvent]
    index: int
    total: int | None
    server_time: datetime | None = None
    size: int = 0  # how many items `data` held (unreadable ones included)

    def last_page(self, page_size: int) -> int:
        if self.total is None:
            return self.index + (1 if self.size >= page_size else 0)
        return max(1, -(-self.total // page_size))

    def is_last(self, page_size: int) -> bool:
        return self.size < page_size or self.index >= self.last_page(page_size)


@dataclass(frozen=True, slots=True)
class Alert:
    """A failure event plus what we know about it; what templates and channels see."""

    event: FlinkEvent
    severity: str = "critical"
    rule: str = "default"
    deployment_name: str = ""
    console_url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.event.event_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event.to_dict(),
            "severity": self.severity,
            "rule": self.rule,
            "deployment_name": self.deployment_name,
            "console_url": self.console_url,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        return cls(**{**data, "event": FlinkEvent.from_dict(data["event"])})


@dataclass(frozen=True)
class Target:
    workspace: str
    namespace: str
    deployment_ids: tuple[str, ...] = ()
    region: str = ""  # "": the configured `region`
    account: str = ""  # the RAM role to assume (its ARN); "": the function's own account
    start_from: str = ""  # "": the configured `start_from`; discovered targets start at latest

    @property
    def name(self) -> str:
        return f"{self.workspace}/{self.namespace}"


@dataclass(frozen=True)
class Batch:
    """What one message is about: alerts for one receiver from one target (Alertmanager's template data)."""

    receiver: str
    target: Target
    alerts: tuple[Alert, ...]
    status: str = "firing"  # or "resolved"
    run_time: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    # Alerts folded away before this batch (e.g. "N older events not shown"); rendered as a note.
    omitted: int = 0
    test: bool = False
    # Email recipients still to deliver to, after others accepted the message (empty: all).
    only_to: tuple[str, ...] = ()
