"""`match: {...}` of rules, routes and silences: every given key must match."""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict

from ..events import Alert, FlinkEvent

Severity = Literal["critical", "warning", "info"]


def _as_tuple(value: object) -> object:
    return (value,) if isinstance(value, str) else value


# `namespace: prod` or `namespace: [prod, staging]`: any of the values.
OneOrMany = Annotated[tuple[str, ...], BeforeValidator(_as_tuple)]


@dataclass(frozen=True)
class Subject:
    """What a matcher looks at: the event, its deployment's name and (once known) its severity."""

    event: FlinkEvent
    deployment_name: str = ""
    severity: str | None = None

    @classmethod
    def of(cls, alert: Alert) -> Subject:
        return cls(alert.event, alert.deployment_name, alert.severity)


class Match(BaseModel):
    """All given keys must match; an empty match matches everything."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_name: OneOrMany | None = None
    # A regular expression searched anywhere in the message; write (?i) to ignore case.
    message: re.Pattern[str] | None = None
    workspace: OneOrMany | None = None
    namespace: OneOrMany | None = None
    # Deployment name globs (`etl-*`); the name comes from ListDeployments.
    deployment: OneOrMany | None = None
    deployment_id: OneOrMany | None = None
    severity: Annotated[tuple[Severity, ...], BeforeValidator(_as_tuple)] | None = None

    def matches(self, subject: Subject) -> bool:
        event = subject.event
        exact = (
            (self.event_name, event.event_name),
            (self.workspace, event.workspace),
            (self.namespace, event.namespace),
            (self.deployment_id, event.deployment_id),
            (self.severity, subject.severity),
        )
        if any(wanted is not None and value not in wanted for wanted, value in exact):
            return False
        if self.message is not None and not self.message.search(event.message):
            return False
        return self.deployment is None or any(
            fnmatchcase(subject.deployment_name, glob) for glob in self.deployment
        )

    def uses(self, key: str) -> bool:
        return getattr(self, key) is not None
