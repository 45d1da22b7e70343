"""`silences:` maintenance windows. An alert a silence matches is counted, not sent.

Absolute: `{match, starts_at, ends_at, comment}`. Recurring: `{match, weekdays: [mon, ...],
between: "01:00-03:00", timezone}`; a window that ends before it starts runs across midnight
(it belongs to the weekday it starts on). Starts are inclusive, ends exclusive.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Tag,
    ValidationInfo,
    field_validator,
)

from .matchers import Match, Subject

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_BETWEEN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def _zone(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use e.g. Asia/Shanghai, UTC)") from None


def _minutes(hours: str, minutes: str) -> int:
    value = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or value > 24 * 60:
        raise ValueError(f"not a time of day: {hours}:{minutes}")
    return value


def _between(value: Any) -> Any:
    """`"22:00-02:00"` -> (start, end) in minutes after midnight."""
    if not isinstance(value, str):
        return value
    match = _BETWEEN.match(value)
    if not match:
        raise ValueError(f"not a window: {value!r} (use e.g. 01:00-03:00)")
    start, end = _minutes(*match.group(1, 2)), _minutes(*match.group(3, 4))
    if start == end or start == 24 * 60:
        raise ValueError(f"empty window: {value!r}")
    return start, end


Zone = Annotated[ZoneInfo, BeforeValidator(_zone)]


class _Silence(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    match: Match = Match()
    comment: str = ""

    def silences(self, subject: Subject, now: datetime) -> bool:
        return self.active(now) and self.match.matches(subject)

    def active(self, now: datetime) -> bool:
        raise NotImplementedError


class AbsoluteSilence(_Silence):
    # For times written without an offset.
    timezone: Zone | None = None
    starts_at: datetime
    ends_at: datetime

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _aware(cls, value: datetime, info: ValidationInfo) -> datetime:
        zone = info.data.get("timezone")
        if value.tzinfo is None and zone is None:
            raise ValueError("give an offset (e.g. 2026-05-01T02:00:00+08:00) or a timezone")
        return value if value.tzinfo else value.replace(tzinfo=zone)

    @field_validator("ends_at")
    @classmethod
    def _after_start(cls, value: datetime, info: ValidationInfo) -> datetime:
        starts_at = info.data.get("starts_at")
        if starts_at is not None and value <= starts_at:
            raise ValueError("must be after starts_at")
        return value

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


class RecurringSilence(_Silence):
    weekdays: tuple[Weekday, ...] = WEEKDAYS
    between: Annotated[tuple[int, int], BeforeValidator(_between)]
    timezone: Zone

    @field_validator("weekdays", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return [day.lower()[:3] for day in value] if isinstance(value, list) else value

    def active(self, now: datetime) -> bool:
        local = now.astimezone(self.timezone)
        minute = local.hour * 60 + local.minute + local.second / 60
        start, end = self.between
        if start < end:
            return self._on(local) and start <= minute < end
        # Across midnight: the evening part today, the early part belongs to yesterday's window.
        evening = self._on(local) and minute >= start
        morning = self._on(local - timedelta(days=1)) and minute < end
        return evening or morning

    def _on(self, local: datetime) -> bool:
        return WEEKDAYS[local.weekday()] in self.weekdays


def _kind(value: Any) -> str:
    given = value if isinstance(value, dict) else value.__dict__
    return "recurring" if "between" in given or "weekdays" in given else "absolute"


SilenceConfig = Annotated[
    Annotated[AbsoluteSilence, Tag("absolute")] | Annotated[RecurringSilence, Tag("recurring")],
    Discriminator(_kind),
]


def silence_for(
    silences: tuple[SilenceConfig, ...], subject: Subject, now: datetime
) -> SilenceConfig | None:
    return next((silence for silence in silences if silence.silences(subject, now)), None)


def describe(silence: SilenceConfig) -> str:
    if isinstance(silence, AbsoluteSilence):
        window = f"{silence.starts_at.isoformat()} to {silence.ends_at.isoformat()}"
    else:
        start, end = silence.between
        days = ",".join(silence.weekdays)
        window = f"{days} {start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d} {silence.timezone.key}"
    return f"{window}{f' ({silence.comment})' if silence.comment else ''}"
