"""`rules:` which events are alerts, which are noise, which resolve an incident. First match wins.

The user's rules come first, then the built-in defaults (unless `rules: {defaults: false}`).
An event no rule matches is ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from .. import rules as builtin
from ..events import Alert, FlinkEvent
from .matchers import Match, Severity, Subject

Action = Literal["alert", "ignore", "resolve"]
# What makes two alerts the same incident; `event` makes every event its own incident.
FingerprintKey = Literal[
    "target", "workspace", "namespace", "deployment", "rule", "event_name", "event"
]
DEFAULT_FINGERPRINT: tuple[FingerprintKey, ...] = ("target", "deployment", "rule")


class RuleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    match: Match = Match()
    severity: Severity = "critical"
    action: Action = "alert"
    fingerprint: tuple[FingerprintKey, ...] = DEFAULT_FINGERPRINT

    @field_validator("match")
    @classmethod
    def _no_severity(cls, match: Match) -> Match:
        if match.uses("severity"):
            raise ValueError("a rule sets the severity; match on it in routes and silences")
        return match


class RulesConfig(BaseModel):
    """`rules: [...]` or `rules: {defaults: false, rules: [...]}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    defaults: bool = True
    rules: tuple[RuleConfig, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _list_means_rules(cls, value: Any) -> Any:
        return {"rules": value} if isinstance(value, list) else value


@dataclass(frozen=True)
class Rule:
    name: str
    action: Action
    matches: Callable[[Subject], bool]
    severity_of: Callable[[FlinkEvent], str]
    fingerprint: tuple[FingerprintKey, ...] = DEFAULT_FINGERPRINT
    needs_names: bool = False  # matches on deployment names (ListDeployments first)


@dataclass(frozen=True, slots=True)
class Verdict:
    """An event a rule alerted on or resolved with, and the incident it belongs to."""

    alert: Alert
    action: Action
    fingerprint: str


def _user_rule(index: int, config: RuleConfig) -> Rule:
    return Rule(
        name=config.name or f"rules[{index}]",
        action=config.action,
        matches=config.match.matches,
        severity_of=lambda _event, severity=config.severity: severity,
        fingerprint=config.fingerprint,
        needs_names=config.match.uses("deployment"),
    )


def _synthetic(subject: Subject) -> bool:
    return subject.event.event_name in builtin.SYNTHETIC


# First match wins, so `failure` only sees events `recovered` turned down: it need not ask again.
DEFAULT_RULES = (
    Rule("ingestion", "alert", _synthetic, lambda _event: "warning", ("target", "event_name")),
    Rule("recovered", "resolve", lambda s: builtin.is_recovery(s.event), builtin.severity),
    Rule("restarting", "alert", lambda s: builtin.is_restart(s.event), builtin.severity),
    Rule("failure", "alert", lambda s: builtin.looks_failed(s.event), builtin.severity),
)


def ruleset(config: RulesConfig) -> tuple[Rule, ...]:
    users = tuple(_user_rule(index, rule) for index, rule in enumerate(config.rules))
    return users + (DEFAULT_RULES if config.defaults else ())


def first_match(rules: tuple[Rule, ...], subject: Subject) -> Rule | None:
    for rule in rules:
        if rule.matches(subject):
            return rule
    return None


def classify(
    events: list[FlinkEvent], rules: tuple[Rule, ...], names: Mapping[str, str]
) -> list[Verdict]:
    """Alerts and resolutions, in the order given; ignored and unmatched events are dropped."""
    verdicts = []
    for event in events:
        subject = Subject(event, names.get(event.deployment_id, ""))
        rule = first_match(rules, subject)
        if rule is None or rule.action == "ignore":
            continue
        alert = Alert(
            event,
            severity=rule.severity_of(event),
            rule=rule.name,
            deployment_name=subject.deployment_name,
        )
        verdicts.append(Verdict(alert, rule.action, fingerprint(alert, rule.fingerprint)))
    return verdicts


def fingerprint(alert: Alert, keys: tuple[FingerprintKey, ...]) -> str:
    event = alert.event
    parts = {
        "target": f"{event.workspace}/{event.namespace}",
        "workspace": event.workspace,
        "namespace": event.namespace,
        "deployment": event.deployment_id,
        "rule": alert.rule,
        "event_name": event.event_name,
        "event": event.event_id,
    }
    return "|".join(f"{key}={parts[key]}" for key in keys)
