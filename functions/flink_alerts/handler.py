"""The FC invocation: parse the timer event, run, return the summary."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from .checkpoint import parse_location
from .fleet.resolve import run_fleet
from .function_compute import in_function_compute
from .logs import setup_logging
from .runner import make_run
from .settings import load_settings

log = logging.getLogger("flink_alerts.handler")
# Leave time to save the checkpoint before FC stops the function.
DEADLINE_MARGIN_S = 10.0


def parse_timer_event(event: Any) -> list[str] | None:
    """The target names a timer payload asks for, or None for all targets.

    A payload we cannot read is a warning, not a failure: the run covers every target instead.
    """
    try:
        return _requested_targets(event)
    except ValueError as exc:
        log.warning("timer payload ignored, running all targets: %s", exc)
        return None


def _requested_targets(event: Any) -> list[str] | None:
    if isinstance(event, (bytes, bytearray)):
        event = event.decode("utf-8") if event else "{}"
    if isinstance(event, str):
        event = json.loads(event) if event.strip() else {}
    payload = event.get("payload") if isinstance(event, dict) else None
    if not payload:
        return None
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError:
            raise ValueError('payload must be JSON like {"targets": ["WS/NS"]}') from None
    targets = payload.get("targets") if isinstance(payload, dict) else None
    if targets is None:
        return None
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise ValueError("payload.targets must be a list of WORKSPACE/NAMESPACE strings")
    return targets


def handle(event: Any, context: Any, started: float, default_config: Path) -> dict[str, Any]:
    """`default_config` (config.yaml beside index.py) is used unless FLINK_ALERTS_CONFIG is set."""
    setup_logging(os.environ.get("FLINK_ALERTS_LOG_LEVEL", "INFO"))
    settings = load_settings(os.environ.get("FLINK_ALERTS_CONFIG") or default_config)
    if in_function_compute(context):  # a file:// checkpoint must then be on a NAS mount
        parse_location(settings.checkpoint, region=settings.region, in_fc=True)
    deadline = started + settings.deadline_s
    remaining = getattr(context, "get_remaining_time_in_ms", None)
    if callable(remaining):
        deadline = started + remaining() / 1000 - DEADLINE_MARGIN_S

    def credentials() -> Any:
        from .credentials import resolve_credentials

        return resolve_credentials(context)

    run = make_run(settings, credentials=credentials, deadline=deadline)
    summary = run_fleet(run, credentials, parse_timer_event(event))
    log.info("run done", extra={"fields": summary.to_dict()})
    return summary.to_dict()
