"""Outcomes as data: every stage says what happened; one recorder builds the summary and logs.

A stage reports to a `Report` bound to where it works (`WS/NS` or `receiver NAME`); the
recorder keeps every outcome, so the summary line, the per-target log lines and, later,
self-monitoring all read the same facts.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from .scrub import scrub


class Kind(str, Enum):
    FETCHED = "fetched"  # events read
    NEW_EVENTS = "new_events"  # events not seen before
    ALERTS = "alerts"  # events a rule alerts on
    SENT = "sent"  # messages delivered
    FAILED = "failed"  # delivery attempts that failed; their alerts wait
    PENDING = "pending"  # alerts waiting in a receiver's outbox
    DROPPED = "dropped"  # alerts given up on (reason: why)
    SILENCED = "silenced"
    FOLDED = "folded"
    RESOLVED = "resolved"  # incidents whose deployment runs again
    REQUESTS = "requests"  # API calls of one target
    SKIPPED = "skipped"  # another run holds the lease
    PARKED = "parked"  # waiting for a person to fix the receiver (reason: the fix)
    ERROR = "error"  # a target or receiver that failed (reason: the error, error_type: its kind)


# The summary line's counts, in this order.
SUMMARY_COUNTS = (
    Kind.FETCHED,
    Kind.NEW_EVENTS,
    Kind.ALERTS,
    Kind.SENT,
    Kind.FAILED,
    Kind.PENDING,
    Kind.DROPPED,
    Kind.SILENCED,
    Kind.FOLDED,
    Kind.RESOLVED,
)


@dataclass(frozen=True)
class Outcome:
    where: str
    kind: Kind
    count: int = 1
    reason: str = ""
    error_type: str = ""


class Report:
    """What one stage uses: `report(Kind.SENT)`, `report(Kind.DROPPED, reason=...)`."""

    def __init__(self, recorder: Recorder, where: str) -> None:
        self.recorder = recorder
        self.where = where

    def __call__(self, kind: Kind, count: int = 1, reason: str = "", error_type: str = "") -> None:
        if count or reason:
            self.recorder.record(Outcome(self.where, kind, count, reason, error_type))

    def total(self, kind: Kind) -> int:
        return self.recorder.total(kind, self.where)

    def parked_since(self, moment: datetime) -> None:
        """The oldest alert still waiting here was queued at `moment` (for self-monitoring)."""
        with self.recorder.lock:
            self.recorder.parked[self.where] = moment


@dataclass
class Recorder:
    outcomes: list[Outcome] = field(default_factory=list)
    places: list[str] = field(default_factory=list)  # every target and receiver of the run
    parked: dict[str, datetime] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # The outcomes again, by place: a target's log line reads its own, not the whole run's.
    by_place: dict[str, list[Outcome]] = field(default_factory=dict, repr=False)

    def at(self, where: str) -> Report:
        with self.lock:
            if where not in self.by_place:
                self.places.append(where)
                self.by_place[where] = []
        return Report(self, where)

    def record(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)
            self.by_place.setdefault(outcome.where, []).append(outcome)

    def total(self, kind: Kind, where: str | None = None) -> int:
        return sum(o.count for o in self._all(where) if o.kind is kind)

    def errors(self) -> list[str]:
        """One line per place and problem: errors, and receivers waiting for a fix."""
        wanted = (Kind.ERROR, Kind.PARKED)
        lines = [
            scrub(f"{o.where}: {o.reason}") for o in self._all() if o.kind in wanted and o.reason
        ]
        return list(dict.fromkeys(lines))

    def fields(self, where: str) -> dict[str, Any]:
        """The log line of one target or receiver."""
        counts = {kind.value: self.total(kind, where) for kind in (*SUMMARY_COUNTS, Kind.REQUESTS)}
        errors = [o.reason for o in self._all(where) if o.kind is Kind.ERROR]
        return {
            "where": where,
            **counts,
            "skipped": bool(self.total(Kind.SKIPPED, where)),
            "error": "; ".join(errors),
        }

    def summary(self, *, targets: int, api_calls: int, duration_ms: int, dry_run: bool) -> Summary:
        return Summary(
            targets=targets,
            api_calls=api_calls,
            counts={kind.value: self.total(kind) for kind in SUMMARY_COUNTS},
            skipped=self.total(Kind.SKIPPED),
            errors=self.errors(),
            duration_ms=duration_ms,
            dry_run=dry_run,
        )

    def _all(self, where: str | None = None) -> list[Outcome]:
        """Every outcome, or those of one place."""
        with self.lock:
            return list(self.outcomes if where is None else self.by_place.get(where, ()))


@dataclass
class Summary:
    targets: int = 0
    api_calls: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    errors: list[str] = field(default_factory=list)
    duration_ms: int = 0
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "targets": self.targets,
            "api_calls": self.api_calls,
            **self.counts,
            "skipped": self.skipped,
            "errors": list(self.errors),
            "duration_ms": self.duration_ms,
            "dry_run": self.dry_run,
        }
