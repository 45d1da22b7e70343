"""The checkpoint of one target, and every transition it goes through. Pure: no I/O.

- `streams`: per GetEvents stream (the target, or one of its deployment ids), how far it has been
  read: an explicit boundary (`floor`) below which every event was handled or deliberately
  skipped, and the ids handled at or above it (see `StreamState` and ingest.py).
- `outbox`: alerts an older version staged per target, delivered and then gone (notifications
  now live in records per receiver, see notify.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from ..errors import CheckpointError
from ..events import FlinkEvent
from .outbox import Outbox, OutboxEntry

SCHEMA = 2
# A schema-1 checkpoint kept ids within this window below its watermark (the default overlap).
_V1_OVERLAP = timedelta(minutes=10)


@dataclass
class StreamState:
    """How far one GetEvents stream has been read.

    `floor`: every event created before it was handled, read or deliberately skipped (a `latest`
    start, a backlog beyond max_pages); it is never new again. `seen`: the ids handled at or
    above the floor, with the time that keeps them there. `total`: totalSize at the last read
    (its growth counts the events that became visible since). `swept_at`: the API's time of the
    last read that went all the way down to the floor. `order`: "asc" or "desc" once known.
    """

    floor: datetime | None = None
    seen: dict[str, datetime] = field(default_factory=dict)
    total: int | None = None
    swept_at: datetime | None = None
    order: str | None = None

    def is_new(self, event: FlinkEvent) -> bool:
        if self.floor is not None and event.created_at < self.floor:
            return False
        return event.event_id not in self.seen

    def to_dict(self) -> dict[str, Any]:
        return {
            "floor": _iso(self.floor),
            "seen": {key: _ms(at) for key, at in self.seen.items()},
            "total": self.total,
            "swept_at": _iso(self.swept_at),
            "order": self.order,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StreamState:
        total = data.get("total")
        if total is not None and (isinstance(total, bool) or not isinstance(total, int)):
            raise ValueError(f"total is {total!r}, not a count")
        order = data.get("order")
        return cls(
            floor=_aware(data.get("floor"), "floor"),
            seen={str(key): _from_ms(at) for key, at in data["seen"].items()},
            total=total,
            swept_at=_aware(data.get("swept_at"), "swept_at"),
            order=order if order in ("asc", "desc") else None,
        )


@dataclass
class Checkpoint(Outbox):
    streams: dict[str, StreamState] = field(default_factory=dict)
    outbox: list[OutboxEntry] = field(default_factory=list)

    @property
    def started(self) -> bool:
        return any(stream.floor is not None for stream in self.streams.values())

    def stream(self, key: str) -> StreamState:
        """The state of one stream ("" for the whole target, else a deployment id)."""
        return self.streams.setdefault(key, StreamState())

    # --- serialisation --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "streams": {key: stream.to_dict() for key, stream in self.streams.items()},
            "outbox": [entry.to_dict() for entry in self.outbox],
        }

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> Checkpoint:
        recover = (
            "inspect with `flink-alerts checkpoint show`, recover with `flink-alerts checkpoint "
            "reset` (the next run then starts as a first run)"
        )
        if not isinstance(data, dict):
            raise CheckpointError(f"{where}: checkpoint is not a JSON object; {recover}")
        if data.get("schema") not in (1, SCHEMA):
            raise CheckpointError(
                f"{where}: unknown checkpoint schema {data.get('schema')!r} (this version reads "
                f"{SCHEMA}); {recover}"
            )
        try:
            streams = _v1_streams(data) if data["schema"] == 1 else data["streams"]
            return cls(
                streams={str(k): StreamState.from_dict(v) for k, v in streams.items()},
                outbox=[OutboxEntry.from_dict(entry) for entry in data["outbox"]],
            )
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            problem = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
            raise CheckpointError(f"{where}: malformed checkpoint: {problem}; {recover}") from None

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)


def _v1_streams(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 kept a watermark and the ids within the default overlap below it."""
    watermark = _aware(data.get("watermark"), "watermark")
    if watermark is None:
        return {}
    seen = {key: _ms(_aware(at, "seen")) for key, at in data["seen"].items()}
    floor = watermark - _V1_OVERLAP
    order = (data.get("api") or {}).get("order")
    return {"": {"floor": floor.isoformat(), "seen": seen, "order": order}}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _ms(moment: datetime | None) -> int:
    assert moment is not None
    return int(moment.timestamp() * 1000)


def _from_ms(value: Any) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"seen holds {value!r}, not epoch milliseconds")
    return datetime.fromtimestamp(value / 1000, tz=timezone.utc)


def _required(value: Any, name: str) -> datetime:
    moment = _aware(value, name)
    if moment is None:
        raise ValueError(f"{name} is missing")
    return moment


def _aware(value: Any, name: str) -> datetime | None:
    """An ISO time with a zone; a naive time (hand-edited) is refused rather than guessed."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"{name} {value!r} has no time zone (write it like {value}+00:00)")
    return moment
