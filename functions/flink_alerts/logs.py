"""Structured logging: one JSON object per line on stderr."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

from .scrub import scrub


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info and record.levelno >= logging.ERROR:
            line["exception"] = self.formatException(record.exc_info)
        # Scrubbed as a whole: messages, fields and tracebacks can all quote a server.
        return scrub(json.dumps(line, ensure_ascii=False, default=str))


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("flink_alerts")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
