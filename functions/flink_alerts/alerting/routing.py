"""`routes:` the routing tree. A route's children are tried in order; the first that matches
wins unless it says `continue: true`; when no child matches, the route itself takes the alert.
Unset keys inherit from the parent. The root takes every alert no route matched and sends it
to every receiver, so nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..events import Alert
from ..units import DurationS
from .matchers import Match, Subject

GroupKey = Literal[
    "deployment", "namespace", "workspace", "target", "rule", "severity", "event_name"
]


class RouteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    match: Match = Match()
    receivers: tuple[str, ...] | None = None
    group_by: tuple[GroupKey, ...] | None = None
    continue_: bool = Field(False, alias="continue")
    group_wait: DurationS | None = None
    repeat_interval: DurationS | None = None
    send_resolved: bool | None = None
    routes: tuple[RouteConfig, ...] = ()


@dataclass(frozen=True)
class Route:
    """A route with everything inherited filled in; `path` names it in config terms."""

    path: str
    match: Match
    receivers: tuple[str, ...]
    group_by: tuple[GroupKey, ...] = ("deployment",)
    group_wait: float = 0.0
    repeat_interval: float = 3600.0
    send_resolved: bool = True
    continue_: bool = False
    children: tuple[Route, ...] = ()

    def walk(self) -> Iterator[Route]:
        yield self
        for child in self.children:
            yield from child.walk()


def build_tree(routes: tuple[RouteConfig, ...], receivers: tuple[str, ...]) -> Route:
    root = Route("root", Match(), receivers)
    return _with_children(root, routes, "routes")


def _with_children(parent: Route, configs: tuple[RouteConfig, ...], prefix: str) -> Route:
    children = tuple(
        _inherit(parent, config, f"{prefix}[{index}]") for index, config in enumerate(configs)
    )
    return replace(parent, children=children)


def _inherit(parent: Route, config: RouteConfig, path: str) -> Route:
    def pick(name: str):
        value = getattr(config, name)
        return getattr(parent, name) if value is None else value

    route = Route(
        path=path,
        match=config.match,
        receivers=pick("receivers"),
        group_by=pick("group_by"),
        group_wait=pick("group_wait"),
        repeat_interval=pick("repeat_interval"),
        send_resolved=pick("send_resolved"),
        continue_=config.continue_,
    )
    return _with_children(route, config.routes, f"{path}.routes")


def matching_routes(route: Route, subject: Subject) -> list[Route]:
    """The routes that take `subject`, in config order (Alertmanager's tree walk)."""
    if not route.match.matches(subject):
        return []
    found: list[Route] = []
    for child in route.children:
        taken = matching_routes(child, subject)
        found += taken
        if taken and not child.continue_:
            break
    return found or [route]


def group_key(route: Route, alert: Alert) -> str:
    """Alerts of one route with equal `group_by` values go out in one message."""
    event = alert.event
    values = {
        "deployment": event.deployment_id,
        "namespace": event.namespace,
        "workspace": event.workspace,
        "target": f"{event.workspace}/{event.namespace}",
        "rule": alert.rule,
        "severity": alert.severity,
        "event_name": event.event_name,
    }
    return route.path + "".join(f"|{key}={values[key]}" for key in route.group_by)


def unknown_receivers(
    routes: tuple[RouteConfig, ...], known: set[str], prefix: str = "routes"
) -> Iterator[tuple[str, str]]:
    """(key path, name) of every receiver a route names that is not configured."""
    for index, route in enumerate(routes):
        path = f"{prefix}[{index}]"
        for name in route.receivers or ():
            if name not in known:
                yield f"{path}.receivers", name
        yield from unknown_receivers(route.routes, known, f"{path}.routes")
