"""Events, alerts and configs for the alerting tests (pure data, no servers)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import TypeAdapter

from flink_alerts.alerting.routing import Route, RouteConfig, build_tree
from flink_alerts.alerting.silences import SilenceConfig
from flink_alerts.events import FlinkEvent

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)  # a Monday, 16:00 in Shanghai


def event(
    name: str = "JOB_FAILED",
    message: str = "",
    *,
    namespace: str = "ns",
    workspace: str = "ws",
    deployment_id: str = "dep-1",
    at: datetime = T0,
    event_id: str = "",
) -> FlinkEvent:
    return FlinkEvent(
        event_id or f"{deployment_id}:{name}:{at.isoformat()}",
        name,
        at,
        workspace,
        namespace,
        deployment_id,
        message=message,
    )


def later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def tree(routes: list[dict[str, Any]], receivers: tuple[str, ...] = ("all",)) -> Route:
    configs = TypeAdapter(tuple[RouteConfig, ...]).validate_python(routes)
    return build_tree(configs, receivers)


def silences(raw: list[dict[str, Any]]) -> tuple[SilenceConfig, ...]:
    return TypeAdapter(tuple[SilenceConfig, ...]).validate_python(raw)
