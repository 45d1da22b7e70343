"""`flink-alerts routes`: what the pipeline would do with one event, and why (like amtool's
`config routes test`). Pure: returns the lines to print."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..errors import ConfigError
from ..events import Alert, FlinkEvent
from .incidents import Incident, decide
from .matchers import Subject
from .routing import Route, matching_routes
from .rules import Rule, fingerprint, first_match
from .silences import SilenceConfig, describe


def event_from_json(raw: Any, now: datetime, workspace: str = "") -> tuple[FlinkEvent, str]:
    """The event (API spelling) and its optional `deploymentName`."""
    if not isinstance(raw, dict):
        raise ConfigError(
            "--event", 'must be a JSON object like {"eventName": ..., "message": ...}'
        )
    text = {key: "" if raw.get(key) is None else str(raw[key]) for key in raw}
    event = FlinkEvent(
        event_id=text.get("eventId") or "routes-test",
        event_name=text.get("eventName", ""),
        created_at=now,
        workspace=text.get("workspace") or workspace,
        namespace=text.get("namespace", ""),
        deployment_id=text.get("deploymentId", ""),
        message=text.get("message", ""),
    )
    return event, text.get("deploymentName", "")


def explain(
    event: FlinkEvent,
    deployment_name: str,
    *,
    rules: tuple[Rule, ...],
    tree: Route,
    silences: tuple[SilenceConfig, ...],
    now: datetime,
) -> list[str]:
    rule = first_match(rules, Subject(event, deployment_name))
    if rule is None:
        return ["rule: none matches -> ignored (no alert)"]
    if rule.action != "alert":
        what = "resolves the deployment's open incidents" if rule.action == "resolve" else "ignored"
        return [f"rule: {rule.name} -> {rule.action}: {what}"]
    alert = Alert(
        event, severity=rule.severity_of(event), rule=rule.name, deployment_name=deployment_name
    )
    lines = [
        f"rule: {rule.name} -> alert, severity {alert.severity}",
        f"fingerprint: {fingerprint(alert, rule.fingerprint)}",
    ]
    incident = Incident.open(fingerprint(alert, rule.fingerprint), alert)
    for route in matching_routes(tree, Subject.of(alert)):
        lines.append(_route_line(route))
        silence = _silence(silences, alert, now)
        if silence:
            lines.append(f"  silenced by {silence}")
        decision = decide(incident, None, route, silenced=bool(silence), now=now)
        lines.append(f"  decision: {decision.reason.value} (for an incident not notified before)")
    return lines


def _route_line(route: Route) -> str:
    receivers = ", ".join(route.receivers) or "(none)"
    return (
        f"route: {route.path} -> receivers {receivers}; group_by {','.join(route.group_by)}; "
        f"group_wait {route.group_wait:g}s; repeat_interval {route.repeat_interval:g}s; "
        f"send_resolved {str(route.send_resolved).lower()}"
    )


def _silence(silences: tuple[SilenceConfig, ...], alert: Alert, now: datetime) -> str:
    for index, silence in enumerate(silences):
        if silence.silences(Subject.of(alert), now):
            return f"silences[{index}]: {describe(silence)}"
    return ""
