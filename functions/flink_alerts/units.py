"""Durations as the configuration spells them, parsed once into seconds."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: Any) -> float:
    """`30s`, `15m`, `24h`, `2d`, `500ms` or a number of seconds -> seconds.

    The message never repeats the value: a secret pasted into the wrong key must not be printed.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # an int with thousands of digits
            return math.copysign(math.inf, value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError("not a duration (use e.g. 30s, 15m, 2h, 1d)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def format_duration(seconds: float) -> str:
    for unit in ("d", "h", "m", "s"):
        if seconds >= _UNIT_SECONDS[unit] and seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds / _UNIT_SECONDS[unit]:g}{unit}"
    return f"{seconds:g}s"


# A config value like `1h` that arrives in the model as seconds.
DurationS = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]


@dataclass(frozen=True)
class Start:
    """Where a first read starts: "latest" (alert on nothing old), "earliest", or a lookback."""

    mode: str
    lookback: timedelta = timedelta(0)

    @classmethod
    def parse(cls, start_from: str, parse: Callable[[str], float] = parse_duration) -> Start:
        if start_from in ("latest", "earliest"):
            return cls(start_from)
        return cls("lookback", timedelta(seconds=parse(start_from)))
