"""From classified events to notices: incidents are updated, routes matched, silences applied,
and `decide` asked once per incident and route. Pure; the caller stores the state it mutates.

Every firing alert gets exactly one outcome per route that takes it (queued, folded or
silenced); a resolved notice only goes to receivers that were told the incident fired.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from ..events import Alert
from .incidents import Decision, Incident, Reason, Sent, Status, decide
from .matchers import Subject
from .routing import Route, group_key, matching_routes
from .rules import Verdict
from .silences import SilenceConfig, silence_for


@dataclass(frozen=True)
class Notice:
    """One message's worth of news about one incident, for one receiver."""

    receiver: str
    route: str
    group: str
    fingerprint: str
    reason: Reason
    alert: Alert
    count: int  # events this notice covers
    since: datetime | None  # the previous notice on this route, if any
    not_before: datetime  # group_wait

    @property
    def status(self) -> Status:
        return Status.RESOLVED if self.reason is Reason.RESOLVED else Status.FIRING

    @property
    def id(self) -> str:
        """Deterministic, so staging the same notice twice (a repeated run) stores it once."""
        parts = (self.receiver, self.route, self.fingerprint, self.status.value)
        return "|".join((*parts, self.alert.key, str(self.count)))


@dataclass(frozen=True)
class Outcome:
    """What happened to one alert (or incident) on one route: data for the recorder."""

    fingerprint: str
    route: str
    reason: Reason
    cause: str  # the event decided on ("" for a digest of earlier events)


@dataclass
class State:
    """Open and recently resolved incidents, and the notification log per (route, incident)."""

    incidents: dict[str, Incident] = field(default_factory=dict)
    log: dict[tuple[str, str], Sent] = field(default_factory=dict)


@dataclass
class Plan:
    notices: list[Notice] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    resolved: int = 0  # incidents resolved

    def count(self, reason: Reason) -> int:
        return sum(outcome.reason is reason for outcome in self.outcomes)


class Planner:
    def __init__(self, tree: Route, silences: tuple[SilenceConfig, ...], now: datetime) -> None:
        self.tree = tree
        self.routes = {route.path: route for route in tree.walk()}
        self.silences = silences
        self.now = now

    def plan(self, state: State, verdicts: list[Verdict]) -> Plan:
        """Take this run's verdicts in order; then one digest per incident whose repeat_interval
        has passed, covering every event folded since its last notice."""
        plan = Plan()
        for verdict in verdicts:
            if verdict.action == "alert":
                self._fire(state, verdict, plan)
            elif verdict.action == "resolve":
                self._resolve(state, verdict.alert, plan)
        self._digests(state, plan)
        return plan

    def _fire(self, state: State, verdict: Verdict, plan: Plan) -> None:
        incident = state.incidents.get(verdict.fingerprint)
        if incident is None:
            incident = state.incidents[verdict.fingerprint] = Incident.open(
                verdict.fingerprint, verdict.alert
            )
        else:
            incident.add(verdict.alert)
        for route in matching_routes(self.tree, Subject.of(verdict.alert)):
            self._consider(state, incident, route, route.receivers, plan, verdict.alert.key)

    def _resolve(self, state: State, alert: Alert, plan: Plan) -> None:
        """A deployment runs again: its firing incidents are resolved."""
        event = alert.event
        where = (event.workspace, event.namespace, event.deployment_id)
        for incident in state.incidents.values():
            if incident.status is Status.FIRING and incident.deployment_key == where:
                self.resolve_incident(state, incident, plan, alert.key)

    def resolve_incident(self, state: State, incident: Incident, plan: Plan, cause: str) -> None:
        incident.status = Status.RESOLVED
        plan.resolved += 1
        for (path, fingerprint), sent in list(state.log.items()):
            if fingerprint == incident.fingerprint:
                route = self.routes.get(path) or self.tree  # a route removed from the config
                self._consider(state, incident, route, sent.receivers, plan, cause, path=path)
                # Told or not (silenced, send_resolved off), this episode is over on the route.
                state.log[(path, fingerprint)] = replace(
                    state.log[(path, fingerprint)], status=Status.RESOLVED
                )

    def _digests(self, state: State, plan: Plan) -> None:
        """Incidents whose repeat interval ended with events folded meanwhile: one digest each."""
        for (path, fingerprint), sent in list(state.log.items()):
            incident = state.incidents.get(fingerprint)
            route = self.routes.get(path)
            if incident is None or route is None or sent.status is not Status.FIRING:
                continue
            if self._decide(state, incident, route, path).reason is Reason.REPEAT_DUE:
                self._consider(state, incident, route, route.receivers, plan, "", path=path)

    def _consider(
        self,
        state: State,
        incident: Incident,
        route: Route,
        receivers: tuple[str, ...],
        plan: Plan,
        cause: str,
        *,
        path: str | None = None,
    ) -> None:
        path = path or route.path
        decision = self._decide(state, incident, route, path)
        if decision.reason is Reason.REPEAT_DUE and cause:
            # An event never repeats on its own: the run's digest covers it (see _digests).
            decision = Decision(Reason.FOLDED)
        plan.outcomes.append(Outcome(incident.fingerprint, path, decision.reason, cause))
        if decision.notify:
            self._queue(state, incident, route, receivers, decision, plan, path)

    def _decide(self, state: State, incident: Incident, route: Route, path: str) -> Decision:
        silenced = silence_for(self.silences, Subject.of(incident.last), self.now) is not None
        sent = state.log.get((path, incident.fingerprint))
        return decide(incident, sent, route, silenced=silenced, now=self.now)

    def _queue(
        self,
        state: State,
        incident: Incident,
        route: Route,
        receivers: tuple[str, ...],
        decision: Decision,
        plan: Plan,
        path: str,
    ) -> None:
        previous = state.log.get((path, incident.fingerprint))
        status = Status.RESOLVED if decision.reason is Reason.RESOLVED else Status.FIRING
        state.log[(path, incident.fingerprint)] = Sent(status, self.now, incident.events, receivers)
        # group_wait counts from when we first hear of it: event clocks may disagree with ours.
        wait = route.group_wait if decision.reason is Reason.NEW else 0.0
        not_before = self.now + timedelta(seconds=wait)
        for receiver in receivers:
            plan.notices.append(
                Notice(
                    receiver=receiver,
                    route=path,
                    group=group_key(route, incident.last),
                    fingerprint=incident.fingerprint,
                    reason=decision.reason,
                    alert=incident.last,
                    count=decision.count,
                    since=previous.at if previous else None,
                    not_before=not_before,
                )
            )
