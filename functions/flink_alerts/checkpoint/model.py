"""The checkpoint of one target, and every transition it goes through. Pure: no I/O.

- `watermark`: the newest createdAt handled; `seen`: ids handled within `overlap` below it, so
  events with equal or slightly older timestamps are neither lost nor repeated.
- `outbox`: one entry per (receiver, alert) not yet delivered. New alerts enter it *before*
  anything is sent (send-then-commit: a crash repeats at most the message in flight).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..errors import CheckpointError
from ..events import Alert, FlinkEvent

SCHEMA = 1


@dataclass(frozen=True)
class RetryPolicy:
    initial_backoff: float = 30.0
    max_backoff: float = 900.0
    max_attempts: int = 20
    max_age: float = 86400.0

    def backoff(self, attempts: int) -> float:
        """Exponential backoff with 'equal jitter': never shorter than half the nominal delay."""
        nominal = min(self.max_backoff, self.initial_backoff * 2 ** max(attempts - 1, 0))
        return nominal / 2 + random.uniform(0, nominal / 2)


@dataclass
class OutboxEntry:
    receiver: str
    alert: Alert
    queued_at: datetime
    next_attempt_at: datetime
    attempts: int = 0
    last_error: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return self.receiver, self.alert.key

    def to_dict(self) -> dict[str, Any]:
        return {
            "receiver": self.receiver,
            "alert": self.alert.to_dict(),
            "queued_at": self.queued_at.isoformat(),
            "next_attempt_at": self.next_attempt_at.isoformat(),
            "attempts": self.attempts,
            "last_error": self.last_error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutboxEntry:
        return cls(
            receiver=data["receiver"],
            alert=Alert.from_dict(data["alert"]),
            queued_at=datetime.fromisoformat(data["queued_at"]),
            next_attempt_at=datetime.fromisoformat(data["next_attempt_at"]),
            attempts=int(data["attempts"]),
            last_error=str(data.get("last_error", "")),
        )


@dataclass
class Checkpoint:
    watermark: datetime | None = None
    seen: dict[str, datetime] = field(default_factory=dict)
    outbox: list[OutboxEntry] = field(default_factory=list)
    # Per-deployment incident state; kept verbatim for the grouping/resolved feature.
    incidents: dict[str, Any] = field(default_factory=dict)
    api_order: str | None = None

    # --- which events are new -------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self.watermark is not None

    def floor(self, overlap: timedelta) -> datetime | None:
        """Events older than this were handled for sure; newer ones are compared by id."""
        return None if self.watermark is None else self.watermark - overlap

    def is_new(self, event: FlinkEvent, overlap: timedelta) -> bool:
        floor = self.floor(overlap)
        if floor is not None and event.created_at < floor:
            return False
        return event.event_id not in self.seen

    def advance(self, events: list[FlinkEvent], overlap: timedelta) -> None:
        """Mark events handled: move the watermark and keep ids within the overlap window."""
        for event in events:
            self.seen[event.event_id] = event.created_at
            if self.watermark is None or event.created_at > self.watermark:
                self.watermark = event.created_at
        floor = self.floor(overlap)
        if floor is not None:
            self.seen = {key: at for key, at in self.seen.items() if at >= floor}

    # --- the outbox -----------------------------------------------------------------------

    def enqueue(self, routed: list[tuple[str, Alert]], now: datetime) -> None:
        queued = {entry.key for entry in self.outbox}
        for receiver, alert in routed:
            if (receiver, alert.key) not in queued:
                self.outbox.append(OutboxEntry(receiver, alert, now, now))
                queued.add((receiver, alert.key))

    def due(self, now: datetime) -> dict[str, list[OutboxEntry]]:
        """Entries whose time has come, per receiver, oldest event first."""
        by_receiver: dict[str, list[OutboxEntry]] = {}
        for entry in self.outbox:
            if entry.next_attempt_at <= now:
                by_receiver.setdefault(entry.receiver, []).append(entry)
        for entries in by_receiver.values():
            entries.sort(key=lambda entry: (entry.alert.event.created_at, entry.alert.key))
        return by_receiver

    def delivered(self, receiver: str, alert_keys: tuple[str, ...]) -> None:
        done = {(receiver, key) for key in alert_keys}
        self.outbox = [entry for entry in self.outbox if entry.key not in done]

    def defer(self, receiver: str, alert_keys: tuple[str, ...], until: datetime) -> None:
        """Wait without counting an attempt (rate limits)."""
        for entry in self._entries(receiver, alert_keys):
            entry.next_attempt_at = max(entry.next_attempt_at, until)

    def failed(
        self,
        receiver: str,
        alert_keys: tuple[str, ...],
        *,
        error: str,
        retryable: bool,
        retry_after: float | None,
        now: datetime,
        policy: RetryPolicy,
    ) -> list[OutboxEntry]:
        """Record a failed attempt; returns the entries given up on (permanent, too many, too old)."""
        dropped: list[OutboxEntry] = []
        for entry in self._entries(receiver, alert_keys):
            entry.attempts += 1
            entry.last_error = error
            expired = (now - entry.queued_at).total_seconds() >= policy.max_age
            if not retryable or entry.attempts >= policy.max_attempts or expired:
                dropped.append(entry)
                continue
            wait = max(policy.backoff(entry.attempts), retry_after or 0.0)
            entry.next_attempt_at = now + timedelta(seconds=wait)
        self._remove(dropped)
        return dropped

    def expire(self, now: datetime, policy: RetryPolicy) -> list[OutboxEntry]:
        """Give up on entries older than max_age even if they never came due again."""
        old = [e for e in self.outbox if (now - e.queued_at).total_seconds() >= policy.max_age]
        self._remove(old)
        return old

    def _entries(self, receiver: str, alert_keys: tuple[str, ...]) -> list[OutboxEntry]:
        wanted = {(receiver, key) for key in alert_keys}
        return [entry for entry in self.outbox if entry.key in wanted]

    def _remove(self, entries: list[OutboxEntry]) -> None:
        gone = {id(entry) for entry in entries}
        self.outbox = [entry for entry in self.outbox if id(entry) not in gone]

    # --- serialisation --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "watermark": self.watermark.isoformat() if self.watermark else None,
            "seen": {key: at.isoformat() for key, at in self.seen.items()},
            "outbox": [entry.to_dict() for entry in self.outbox],
            "incidents": self.incidents,
            "api": {"order": self.api_order},
        }

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> Checkpoint:
        if not isinstance(data, dict):
            raise CheckpointError(f"{where}: checkpoint is not a JSON object")
        if data.get("schema") != SCHEMA:
            raise CheckpointError(
                f"{where}: unknown checkpoint schema {data.get('schema')!r} (this version reads "
                f"{SCHEMA}); inspect with `flink-alerts checkpoint show`, recover with "
                "`flink-alerts checkpoint reset`"
            )
        try:
            watermark = data.get("watermark")
            return cls(
                watermark=datetime.fromisoformat(watermark) if watermark else None,
                seen={key: datetime.fromisoformat(at) for key, at in data["seen"].items()},
                outbox=[OutboxEntry.from_dict(entry) for entry in data["outbox"]],
                incidents=dict(data.get("incidents") or {}),
                api_order=(data.get("api") or {}).get("order"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"{where}: malformed checkpoint ({exc!r})") from None

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)
