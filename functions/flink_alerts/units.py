"""Durations as the configuration spells them, parsed once into seconds."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: Any) -> float:
    """`30s`, `15m`, `24h`, `2d`, `500ms` or a number of seconds -> seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 15m, 2h, 1d)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


# A config value like `1h` that arrives in the model as seconds.
DurationS = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
