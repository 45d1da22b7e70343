"""The checkpoint of one target, and every transition it goes through. Pure: no I/O.

- `watermark`: the newest createdAt handled; `seen`: ids handled within `overlap` below it, so
  events with equal or slightly older timestamps are neither lost nor repeated.
- `outbox`: one entry per (receiver, alert) not yet delivered. New alerts enter it *before*
  anything is sent (send-then-commit: a crash repeats at most the message in flight).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..errors import CheckpointError
from ..events import FlinkEvent
from .outbox import Outbox, OutboxEntry

SCHEMA = 1


@dataclass
class Checkpoint(Outbox):
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
