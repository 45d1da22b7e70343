"""The outbox: alerts waiting for a receiver, with retry and backoff. Pure: no I/O.

New alerts enter it *before* anything is sent (send-then-commit: a crash repeats at most the
message in flight). Holders keep the entries in `self.outbox`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..events import Alert


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
    only_to: tuple[str, ...] = ()  # email recipients still to deliver to (others accepted it)

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
            **({"only_to": list(self.only_to)} if self.only_to else {}),
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
            only_to=tuple(data.get("only_to") or ()),
        )


class Outbox:
    outbox: list[OutboxEntry]

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
        parked: bool = False,
        retry_only: tuple[str, ...] = (),
    ) -> list[OutboxEntry]:
        """Record a failed attempt; returns the entries given up on (permanent, too many, too old).

        `parked`: waiting for a person to fix the receiver, so only `max_age` gives up on it."""
        dropped: list[OutboxEntry] = []
        for entry in self._entries(receiver, alert_keys):
            entry.attempts += 1
            entry.last_error = error
            entry.only_to = retry_only or entry.only_to
            expired = (now - entry.queued_at).total_seconds() >= policy.max_age
            too_many = entry.attempts >= policy.max_attempts and not parked
            if not (retryable or parked) or too_many or expired:
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
