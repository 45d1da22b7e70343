"""Notification stages: plan and stage per target, deliver per receiver.

Order of writes for one target (send-then-commit, nothing lost by a crash between any two):

1. plan the target's verdicts against the alerting record (incidents, notification log);
2. stage the notices into each receiver's record (compare-and-swap, deduplicated by notice id);
3. save the alerting record, marking the events as planned (compare-and-swap; on a lost race
   everything from 1 is redone on the fresh record: staging again adds nothing twice);
4. the runner commits the target's ingestion boundary.

A crash after 2 repeats the same events next run: the plan is the same, staging dedupes it. A
crash after 3 repeats them too: they are marked planned and skipped. Delivery runs once per
receiver after every target was staged, so one message can cover several targets.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from .alerting.incidents import Status
from .alerting.matchers import Subject
from .alerting.planner import Plan, Planner
from .alerting.records import AlertingRecord, Pending, ReceiverRecord
from .alerting.routing import matching_routes
from .alerting.rules import Verdict
from .channels.base import Channel
from .checkpoint.outbox import OutboxEntry, RetryPolicy
from .checkpoint.store import RecordStore
from .delivery import Deliverer, RateLimiter
from .errors import ApiError, LeaseHeldError
from .events import Target
from .flink.jobs import JobStatus, latest
from .outcomes import Kind, Report
from .settings import Settings

log = logging.getLogger("flink_alerts.notify")
ALERTING_KEY = "alerting"
MAX_STAGE_ATTEMPTS = 10
JOB_LOOKUP_MARGIN_S = 20.0  # no ListJobs calls when the run has less time than this left


def receiver_key(name: str) -> str:
    return "receiver." + quote(name, safe="")


def event_key(verdict: Verdict) -> str:
    event = verdict.alert.event
    return f"{event.workspace}/{event.namespace}/{event.event_id}"


class Jobs:
    """ListJobs, at most once per deployment and run, and never when the deadline is near."""

    def __init__(self, source: Any, deadline: float) -> None:
        self.list_jobs = getattr(source, "list_jobs", None)
        self.deadline = deadline
        self.cache: dict[tuple[str, str, str], JobStatus | None] = {}

    def current(self, target: Target, deployment_id: str) -> JobStatus | None:
        key = (target.workspace, target.namespace, deployment_id)
        if key in self.cache:
            return self.cache[key]
        if not self.list_jobs or not deployment_id:
            return None
        if time.monotonic() > self.deadline - JOB_LOOKUP_MARGIN_S:
            return None
        try:
            self.cache[key] = latest(self.list_jobs(target, deployment_id))
        except ApiError as exc:  # a nicety: the alert matters more
            log.warning("cannot list jobs of %s in %s: %s", deployment_id, target.name, exc)
            self.cache[key] = None
        return self.cache[key]


def with_causes(verdicts: list[Verdict], target: Target, jobs: Jobs) -> list[Verdict]:
    """Add ListJobs' failure cause to failures whose text lacks it."""
    return [_with_cause(verdict, target, jobs) for verdict in verdicts]


def _with_cause(verdict: Verdict, target: Target, jobs: Jobs) -> Verdict:
    alert = verdict.alert
    if verdict.action != "alert" or alert.severity != "critical":
        return verdict
    job = jobs.current(target, alert.event.deployment_id)
    failure = job.failure if job else None
    if not failure or not failure.message or failure.message in alert.event.message:
        return verdict
    cause = f"{failure.reason}: {failure.message}" if failure.reason else failure.message
    return replace(verdict, alert=replace(alert, extra={**alert.extra, "cause": cause}))


class Notifier:
    def __init__(
        self,
        settings: Settings,
        records: RecordStore,
        channels: dict[str, Channel],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.settings = settings
        self.records = records
        self.channels = channels
        self.clock = clock
        self.policy = RetryPolicy(**settings.delivery.model_dump(exclude={"timeout_s"}))
        self._alerting_lock = threading.Lock()
        self._alerting: tuple[dict[str, Any] | None, int | None] | None = None

    # -- stage (per target) ------------------------------------------------------------------

    def stage(self, target: Target, verdicts: list[Verdict], jobs: Jobs, now: datetime) -> Plan:
        # One target at a time within a run: no compare-and-swap storm between our own threads,
        # and the alerting record is read once per run, not once per target (again after a
        # lost race with another process).
        with self._alerting_lock:
            for attempt in range(MAX_STAGE_ATTEMPTS):
                if attempt or self._alerting is None:
                    self._alerting = self.records.read(ALERTING_KEY)
                data, version = self._alerting
                record = AlertingRecord.from_dict(data) if data else AlertingRecord()
                plan = self._plan(record, target, verdicts, jobs, now)
                self._stage_notices(plan, now)
                changed = record.to_dict()
                if changed == (data or AlertingRecord().to_dict()):
                    return plan
                if self.records.put(ALERTING_KEY, changed, version):
                    self._alerting = (changed, (version or 0) + 1)
                    return plan
        raise LeaseHeldError(f"{target.name}: the alerting record kept changing; staged next run")

    def _plan(
        self,
        record: AlertingRecord,
        target: Target,
        verdicts: list[Verdict],
        jobs: Jobs,
        now: datetime,
    ) -> Plan:
        fresh = [v for v in verdicts if event_key(v) not in record.applied]
        planner = Planner(self.settings.route_tree, self.settings.silences, now)
        plan = planner.plan(record.state, fresh)
        self._resolve_running(record, target, {v.fingerprint for v in fresh}, planner, plan, jobs)
        record.mark_applied([event_key(v) for v in fresh], now)
        record.mark_staged([notice.receiver for notice in plan.notices])
        record.prune(now, {path: r.repeat_interval for path, r in planner.routes.items()})
        return plan

    @staticmethod
    def _resolve_running(
        record: AlertingRecord,
        target: Target,
        touched: set[str],
        planner: Planner,
        plan: Plan,
        jobs: Jobs,
    ) -> None:
        """Open incidents of the target whose deployment runs again (ListJobs), once per run."""
        for incident in list(record.state.incidents.values()):
            workspace, namespace, deployment_id = incident.deployment_key
            if incident.status is not Status.FIRING or incident.fingerprint in touched:
                continue
            if (workspace, namespace) != (target.workspace, target.namespace):
                continue
            job = jobs.current(target, deployment_id)
            started = job.started_at if job else None
            if job and job.status == "RUNNING" and started and started > incident.last_at:
                planner.resolve_incident(
                    record.state, incident, plan, cause=f"ListJobs {job.job_id}"
                )

    def _stage_notices(self, plan: Plan, now: datetime) -> None:
        for name in dict.fromkeys(notice.receiver for notice in plan.notices):

            def change(data: dict[str, Any] | None, name: str = name) -> dict[str, Any]:
                record = ReceiverRecord.from_dict(data) if data else ReceiverRecord(name)
                record.stage(plan.notices, now)
                return record.to_dict()

            self.records.update(receiver_key(name), change)

    # -- deliver (per receiver, after every target) -------------------------------------------

    def deliver(self, name: str, deadline: float, report: Report) -> None:
        """Send what is due for one receiver; report what happened and what still waits."""
        now = self.clock()
        data, _ = self.records.read(receiver_key(name))
        if not data or not data.get("outbox"):
            return  # nothing waits: no write
        ttl = max(deadline - time.monotonic(), 0) + 30.0
        lease = self.records.acquire(receiver_key(name), ttl, now)
        record = ReceiverRecord.from_dict(lease.data) if lease.data else ReceiverRecord(name)
        known = {entry.id for entry in record.outbox}

        def merge(fresh: dict[str, Any], _ours: dict[str, Any]) -> dict[str, Any]:
            added = [e for e in ReceiverRecord.from_dict(fresh).outbox if e.id not in known]
            record.outbox.extend(added)
            known.update(entry.id for entry in added)
            return record.to_dict()

        def persist() -> None:
            self.records.save(lease, record.to_dict(), merge)

        limiter = self._limiter(name, record)
        try:
            deliverer = Deliverer(self.channels, self.policy, limiter)
            deliverer.deliver(record, lambda: record.batches(now), now, persist, report)
        finally:
            record.sent_at = list(limiter.sent.get(name, ()))
            self.records.save(lease, record.to_dict(), merge, release=True)
        report(Kind.PENDING, len(record.outbox))
        if record.outbox:
            report.parked_since(min(entry.queued_at for entry in record.outbox))

    # -- receivers renamed or removed ----------------------------------------------------------

    def stranded(self) -> list[str]:
        """Receivers with notices staged earlier that the configuration no longer has."""
        with self._alerting_lock:
            if self._alerting is None:  # no target staged in this run: read it now
                self._alerting = self.records.read(ALERTING_KEY)
            data = self._alerting[0]
        configured = {receiver.name for receiver in self.settings.receivers}
        known = AlertingRecord.from_dict(data).receivers if data else []
        return [name for name in known if name not in configured]

    def reroute(self, name: str, deadline: float) -> str:
        """Move what waits for a gone receiver to where the routes send it now; say what moved."""
        now = self.clock()
        ttl = max(deadline - time.monotonic(), 0) + 30.0
        lease = self.records.acquire(receiver_key(name), ttl, now)
        record = ReceiverRecord.from_dict(lease.data) if lease.data else ReceiverRecord(name)
        moved = self._moved(name, record.outbox)
        for other, entries in moved.items():
            self.records.update(receiver_key(other), _adding(other, entries))
        waiting = len(record.outbox)
        if moved or not waiting:
            record.outbox = []
            self._forget_receiver(name)
        self.records.save(lease, record.to_dict(), lambda fresh, ours: ours, release=True)
        if not waiting:
            return ""
        where = f"re-routed to {', '.join(moved)}" if moved else "kept: no receiver to route to"
        log.error("receiver %s is no longer configured: %d alerts waited; %s", name, waiting, where)
        return f"no longer configured (renamed or removed): {waiting} waiting alerts {where}"

    def _moved(self, name: str, entries: list[OutboxEntry]) -> dict[str, list[Pending]]:
        moved: dict[str, list[Pending]] = {}
        for entry in entries:
            routes = matching_routes(self.settings.route_tree, Subject.of(entry.alert))
            for other in dict.fromkeys(n for route in routes for n in route.receivers):
                entry_id = f"{other}|from {name}|{getattr(entry, 'id', entry.alert.key)}"
                copy = Pending(**{**entry.__dict__, "receiver": other, "id": entry_id})
                moved.setdefault(other, []).append(copy)
        return moved

    def _forget_receiver(self, name: str) -> None:
        def change(data: dict[str, Any] | None) -> dict[str, Any]:
            record = AlertingRecord.from_dict(data) if data else AlertingRecord()
            record.receivers = [known for known in record.receivers if known != name]
            return record.to_dict()

        self.records.update(ALERTING_KEY, change)

    def _limiter(self, name: str, record: ReceiverRecord) -> RateLimiter:
        """The receiver's rate limit over wall-clock time, seeded by earlier runs' messages."""
        limits = rate_limits(self.settings, self.channels)
        limiter = RateLimiter({k: v for k, v in limits.items() if k == name}, clock=time.time)
        if name in limits:
            limiter.sent[name] = deque(record.sent_at)
        return limiter


def _adding(name: str, entries: list[Pending]) -> Callable[[dict[str, Any] | None], dict]:
    def change(data: dict[str, Any] | None) -> dict[str, Any]:
        record = ReceiverRecord.from_dict(data) if data else ReceiverRecord(name)
        staged = {getattr(entry, "id", "") for entry in record.outbox}
        record.outbox += [entry for entry in entries if entry.id not in staged]
        return record.to_dict()

    return change


def rate_limits(settings: Settings, channels: dict[str, Channel]) -> dict[str, tuple[int, float]]:
    limits: dict[str, tuple[int, float]] = {}
    for receiver in settings.receivers:
        channel = channels.get(receiver.name)
        limit = receiver.rate or (channel.default_rate if channel else None)
        if limit:
            limits[receiver.name] = limit
    return limits
