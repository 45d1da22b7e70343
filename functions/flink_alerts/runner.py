"""One run: every target is ingested and staged, then every receiver gets what is due.

    per target, under its lease:  ingest -> classify -> enrich -> plan + stage -> commit
    per receiver, under its lease: deliver (grouped across targets), persisting after each message

Nothing is lost by a crash: notices are staged in the receivers' records before the target's
ingestion boundary commits (the order of writes is in notify.py), and a delivered message is
removed with a save, so a crash repeats at most the message in flight.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any, TextIO

from .alerting.incidents import Reason
from .alerting.planner import Plan
from .alerting.rules import Verdict, classify
from .channels.base import Channel
from .checkpoint.model import Checkpoint
from .checkpoint.outbox import RetryPolicy
from .checkpoint.store import CheckpointStore, RecordStore
from .delivery import Deliverer, RateLimiter
from .errors import ApiError, ConfigError, FlinkAlertsError, LeaseHeldError
from .events import Alert, FlinkEvent, Target
from .flink.client import FetchResult
from .notify import Jobs, Notifier, rate_limits, with_causes
from .outcomes import Kind, Recorder, Report, Summary
from .settings import Settings, parse_duration
from .sources import EventSource

log = logging.getLogger("flink_alerts.run")
LEASE_MARGIN_S = 30.0


def select_targets(settings: Settings, names: list[str] | None = None) -> list[Target]:
    targets = [Target(t.workspace, t.namespace, tuple(t.deployment_ids)) for t in settings.targets]
    if not names:
        return targets
    by_name = {target.name: target for target in targets}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise ConfigError("targets", f"{unknown[0]!r} is not a configured WORKSPACE/NAMESPACE")
    return [by_name[name] for name in names]


class Run:
    def __init__(
        self,
        settings: Settings,
        *,
        source: EventSource,
        store: CheckpointStore,
        records: RecordStore,
        channels: dict[str, Channel],
        deadline: float,
        dry_run: bool = False,
        out: TextIO | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.settings = settings
        self.source = source
        self.store = store
        self.channels = channels
        self.notifier = Notifier(settings, records, channels, clock=clock)
        self.deadline = deadline
        self.dry_run = dry_run
        self.out = out
        self.clock = clock
        self.overlap = timedelta(seconds=settings.overlap_window)
        self.policy = RetryPolicy(**settings.delivery.model_dump(exclude={"timeout_s"}))
        self.deliverer = Deliverer(
            channels, self.policy, RateLimiter(rate_limits(settings, channels))
        )
        self.jobs = Jobs(source, deadline)

    def run(self, targets: list[Target]) -> Summary:
        started = time.monotonic()
        recorder = Recorder()
        workers = max(1, min(self.settings.concurrency, len(targets)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="target") as pool:
            list(pool.map(partial(self.run_target, recorder=recorder), targets))
            list(pool.map(partial(self.reroute_receiver, recorder=recorder), self._stranded()))
            names = [receiver.name for receiver in self.settings.receivers]
            list(pool.map(partial(self.run_receiver, recorder=recorder), names))
        return recorder.summary(
            targets=len(targets),
            api_calls=self.source.api_calls,
            duration_ms=int((time.monotonic() - started) * 1000),
            dry_run=self.dry_run,
        )

    def run_target(self, target: Target, recorder: Recorder) -> None:
        report = recorder.at(target.name)
        self._guarded(report, lambda: self._run_target(target, report), target=True)

    def run_receiver(self, name: str, recorder: Recorder) -> None:
        """Deliver what is due for one receiver, for every target at once."""
        report = recorder.at(f"receiver {name}")
        self._guarded(report, lambda: self.notifier.deliver(name, self.deadline, report))

    def _stranded(self) -> list[str]:
        try:
            return self.notifier.stranded()
        except FlinkAlertsError as exc:  # the store is down: the targets already said so
            log.warning("cannot look for renamed receivers: %s", exc)
            return []

    def reroute_receiver(self, name: str, recorder: Recorder) -> None:
        """A receiver renamed or removed: what waits for it is reported and re-routed."""
        report = recorder.at(f"receiver {name}")
        self._guarded(
            report, lambda: report(Kind.ERROR, 0, self.notifier.reroute(name, self.deadline))
        )

    def _guarded(self, report: Report, stage: Callable[[], None], *, target: bool = False) -> None:
        """Run one stage; whatever goes wrong is reported, and the other stages go on."""
        started = time.monotonic()
        try:
            stage()
        except LeaseHeldError as exc:
            if target:  # a receiver another run delivers to is not a skipped target
                report(Kind.SKIPPED)
            log.info("%s", exc)
        except FlinkAlertsError as exc:
            report(Kind.ERROR, reason=str(exc), error_type=type(exc).__name__)
        except Exception as exc:  # a bug must not stop the other targets
            log.exception("unexpected error in %s", report.where)
            report(Kind.ERROR, reason=f"unexpected {type(exc).__name__}: {exc}", error_type="bug")
        fields = {
            **report.recorder.fields(report.where),
            "duration_ms": int((time.monotonic() - started) * 1000),
        }
        log.log(
            logging.ERROR if fields["error"] else logging.INFO, "done", extra={"fields": fields}
        )

    def _run_target(self, target: Target, report: Report) -> None:
        now = self.clock()
        ttl = max(self.deadline - time.monotonic(), 0) + LEASE_MARGIN_S
        lease = self.store.acquire(target, ttl, now)
        try:
            events = self._take_in(target, lease.checkpoint, now, report)
            verdicts = self._enrich(target, self._classify(target, events))
            plan = self.notifier.stage(target, verdicts, self.jobs, now)
            self._report_plan(target, report, verdicts, plan)
            self._deliver_legacy_outbox(target, lease, now, report)
            self.store.save(lease, release=True)
        except BaseException:
            self.store.release(lease)
            raise

    def _take_in(
        self, target: Target, checkpoint: Checkpoint, now: datetime, report: Report
    ) -> list[FlinkEvent]:
        """Ingestion: the target's new events, oldest first (none on a quiet `latest` start)."""
        first_run = not checkpoint.started
        fetch = self._fetch(target, checkpoint, now)
        new = [event for event in fetch.events if checkpoint.is_new(event, self.overlap)]
        quiet_start = first_run and self.settings.start_from == "latest"
        checkpoint.advance(new, self.overlap)
        if checkpoint.watermark is None:
            checkpoint.watermark = now  # an empty stream: start here, not again from scratch
        checkpoint.api_order = fetch.order or checkpoint.api_order
        report(Kind.FETCHED, len(fetch.events))
        report(Kind.NEW_EVENTS, len(new))
        report(Kind.REQUESTS, fetch.requests)
        if quiet_start:
            return []
        if not fetch.complete and fetch.unseen_estimate > 0:
            new.insert(0, backlog_event(target, fetch, self.settings.max_pages))
        return new

    def _classify(self, target: Target, events: list[FlinkEvent]) -> list[Verdict]:
        """Rules, first match wins: alert, resolve or ignore."""
        rules = self.settings.ruleset
        needs_names = events and any(rule.needs_names for rule in rules)
        return classify(events, rules, self._names(target) if needs_names else {})

    def _report_plan(
        self, target: Target, report: Report, verdicts: list[Verdict], plan: Plan
    ) -> None:
        alerts = sum(verdict.action == "alert" for verdict in verdicts)
        report(Kind.ALERTS, alerts)
        report(Kind.SILENCED, plan.count(Reason.SILENCED))
        report(Kind.FOLDED, plan.count(Reason.FOLDED))
        report(Kind.RESOLVED, plan.resolved)
        if alerts and not self.settings.receivers:
            log.warning("%s: %d alerts and no receiver configured", target.name, alerts)

    def _deliver_legacy_outbox(
        self, target: Target, lease: Any, now: datetime, report: Report
    ) -> None:
        """Alerts staged per target by an older version: delivered as before, then gone."""
        if not lease.checkpoint.outbox:
            return
        self.deliverer.deliver_due(
            target, lease.checkpoint, now, partial(self.store.save, lease), report
        )
        report(Kind.PENDING, len(lease.checkpoint.outbox))

    def _fetch(self, target: Target, checkpoint: Checkpoint, now: datetime) -> FetchResult:
        paging = {"page_size": self.settings.page_size, "order_hint": checkpoint.api_order}
        if checkpoint.started:
            floor = checkpoint.floor(self.overlap)
        elif self.settings.start_from == "latest":
            return self.source.fetch_latest(target, **paging)
        elif self.settings.start_from == "earliest":
            floor = None
        else:
            floor = now - timedelta(seconds=parse_duration(self.settings.start_from))
        return self.source.fetch_new(
            target, floor=floor, max_pages=self.settings.max_pages, **paging
        )

    def _enrich(self, target: Target, verdicts: list[Verdict]) -> list[Verdict]:
        """Deployment names, console links, and ListJobs' cause of a failure."""
        if not verdicts:
            return verdicts
        names = self._names(target)
        named = [replace(v, alert=self._enriched(v.alert, names)) for v in verdicts]
        return with_causes(named, target, self.jobs)

    def _names(self, target: Target) -> dict[str, str]:
        try:
            return self.source.list_deployments(target)
        except ApiError as exc:  # names are a nicety; the alert matters more
            log.warning("cannot list deployments of %s: %s", target.name, exc)
            return {}

    def _enriched(self, alert: Alert, names: dict[str, str]) -> Alert:
        event = alert.event
        if not event.deployment_id:
            return alert
        url = self.settings.console_url.format(
            region=self.settings.region,
            workspace=event.workspace,
            namespace=event.namespace,
            deployment_id=event.deployment_id,
        )
        return replace(alert, deployment_name=names.get(event.deployment_id, ""), console_url=url)


def backlog_event(target: Target, fetch: FetchResult, max_pages: int) -> FlinkEvent:
    """One synthetic event standing for the new events beyond `max_pages`, instead of a flood."""
    # Just before the oldest event read: the events it stands for are older still.
    oldest = fetch.events[0].created_at if fetch.events else datetime.now(timezone.utc)
    oldest -= timedelta(milliseconds=1)
    return FlinkEvent(
        event_id=f"backlog:{target.name}:{oldest.isoformat()}",
        event_name="EVENTS_NOT_SHOWN",
        created_at=oldest,
        workspace=target.workspace,
        namespace=target.namespace,
        message=(
            f"{fetch.unseen_estimate} older events not shown: more new events than max_pages="
            f"{max_pages} pages; look at the Flink console for the full history"
        ),
    )


def make_run(
    settings: Settings,
    *,
    credentials: Callable[[], Any],
    deadline: float,
    dry_run: bool = False,
    out: TextIO | None = None,
) -> Run:
    """Wire the run from configuration. `credentials` is called only if something needs the cloud."""
    from .channels import make_channel
    from .channels.base import RecordingChannel
    from .checkpoint import open_store
    from .checkpoint.backend import OverlayBackend
    from .render import Renderer

    renderer = Renderer(settings.templates_dir, settings.timezone)
    channels = {
        receiver.name: make_channel(receiver, renderer, settings.delivery.timeout_s)
        for receiver in settings.receivers
    }
    store = open_store(settings.checkpoint, region=settings.region, credentials=credentials)
    if dry_run:  # the same pipeline, with writes kept in memory and channels that only print
        store = CheckpointStore(OverlayBackend(store.backend), store.owner, local=store.local)
        channels = {name: RecordingChannel(channel, out) for name, channel in channels.items()}
    return Run(
        settings,
        source=make_source(settings, credentials=credentials, deadline=deadline),
        store=store,
        records=RecordStore(store.backend, store.owner, local=store.local),
        channels=channels,
        deadline=deadline,
        dry_run=dry_run,
        out=out,
    )


def make_source(
    settings: Settings, *, credentials: Callable[[], Any], deadline: float
) -> EventSource:
    if settings.source:
        from .sources import ReplaySource, replay_path

        return ReplaySource(replay_path(settings.source))
    from .flink.client import FlinkClient

    return FlinkClient(
        settings.api_endpoint, credentials(), timeout_s=settings.timeout_s, deadline=deadline
    )
