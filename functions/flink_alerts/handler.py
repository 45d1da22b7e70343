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
from .runner import Wiring, make_run
from .settings import Settings, load_settings

log = logging.getLogger("flink_alerts.handler")
# Leave time to save the checkpoint before FC stops the function.
DEADLINE_MARGIN_S = 10.0


class WarmInstance:
    """What a warm FC instance keeps between invocations: the validated settings and the run's
    wiring. Both are rebuilt only when the config file (mtime and size) or the environment changes."""

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._loaded: tuple[Settings, Wiring] | None = None

    def load(self, path: str | os.PathLike[str]) -> tuple[Settings, Wiring]:
        key = _config_key(path)
        if self._loaded is None or key != self._key:
            settings = load_settings(path)
            self._key, self._loaded = key, (settings, Wiring(settings))
        return self._loaded


def _config_key(path: str | os.PathLike[str]) -> tuple[Any, ...]:
    try:
        stat = os.stat(path)
    except OSError:
        return (str(path), None)  # load_settings reports the unreadable file
    return (str(path), stat.st_mtime_ns, stat.st_size, tuple(sorted(os.environ.items())))


WARM = WarmInstance()


def timer_payload(event: Any) -> dict[str, Any]:
    """The timer event's payload as a mapping ({} when there is none).

    A payload we cannot read is a warning, not a failure: the run then covers every target.
    """
    try:
        return _payload(event)
    except ValueError as exc:
        log.warning("timer payload ignored, running all targets: %s", exc)
        return {}


def _payload(event: Any) -> dict[str, Any]:
    if isinstance(event, (bytes, bytearray)):
        event = event.decode("utf-8") if event else "{}"
    if isinstance(event, str):
        event = json.loads(event) if event.strip() else {}
    payload = event.get("payload") if isinstance(event, dict) else None
    if not payload:
        return {}
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError:
            raise ValueError('payload must be JSON like {"targets": ["WS/NS"]}') from None
    return payload if isinstance(payload, dict) else {}


def parse_timer_event(event: Any) -> list[str] | None:
    """The target names a timer payload asks for, or None for all targets."""
    targets = timer_payload(event).get("targets")
    if targets is None:
        return None
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        log.warning("timer payload ignored, running all targets: payload.targets must be a list")
        return None
    return targets


def handle(event: Any, context: Any, started: float, default_config: Path) -> dict[str, Any]:
    """`default_config` (config.yaml beside index.py) is used unless FLINK_ALERTS_CONFIG is set."""
    setup_logging(os.environ.get("FLINK_ALERTS_LOG_LEVEL", "INFO"))
    settings, wiring = WARM.load(os.environ.get("FLINK_ALERTS_CONFIG") or default_config)
    if in_function_compute(context):  # a file:// checkpoint must then be on a NAS mount
        parse_location(settings.checkpoint, region=settings.region, in_fc=True)
    deadline = started + settings.deadline_s
    remaining = getattr(context, "get_remaining_time_in_ms", None)
    if callable(remaining):
        deadline = started + remaining() / 1000 - DEADLINE_MARGIN_S

    def credentials() -> Any:
        from .credentials import resolve_credentials

        return resolve_credentials(context)

    if timer_payload(event).get("dispatch"):  # fan-out: invoke the worker once per shard
        from .fanout import dispatch_configured

        return dispatch_configured(settings, credentials).to_dict()
    run = make_run(settings, credentials=credentials, deadline=deadline, wiring=wiring)
    summary = run_fleet(run, credentials, parse_timer_event(event), strict=False)
    log.info("run done", extra={"fields": summary.to_dict()})
    return summary.to_dict()
