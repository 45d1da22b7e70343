"""One run: every target is ingested and staged, then every receiver gets what is due.

    per target: read the record -> ingest -> classify -> enrich -> plan + stage
                -> commit the ingestion boundary (compare-and-swap on the version read;
                   nothing new: nothing written)
    per receiver, under its lease: deliver (grouped across targets), persisting after each message

Nothing is lost by a crash: notices are staged in the receivers' records before the target's
ingestion boundary commits (the order of writes is in notify.py; staging the same events again
adds nothing), and a delivered message is removed with a save, so a crash repeats at most the
message in flight. Two overlapping runs read the same version of a target's record: only one
commits it (the other is `skipped`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import TYPE_CHECKING, Any, TextIO

from .alerting.incidents import Reason
from .alerting.planner import Plan
from .alerting.rules import Verdict, classify
from .channels.base import Channel
from .checkpoint.model import Checkpoint
from .checkpoint.outbox import RetryPolicy
from .checkpoint.store import CheckpointStore, Lease, RecordStore
from .delivery import Deliverer, RateLimiter
from .errors import ApiError, ConfigError, FlinkAlertsError, LeaseHeldError
from .events import Alert, EventsPage, FlinkEvent, Target
from .ingest import Ingested, Limits, ingest_target
from .notify import Jobs, Notifier, rate_limits, with_causes
from .outcomes import Kind, Recorder, Report, Summary
from .settings import Settings
from .sources import EventSource
from .units import Start

if TYPE_CHECKING:
    import requests

log = logging.getLogger("flink_alerts.run")
LEASE_MARGIN_S = 30.0
# Pages of one backlog read at once (beside the targets already read in parallel).
MAX_PARALLEL_PAGES = 8


def select_targets(targets: list[Target], names: list[str] | None = None) -> list[Target]:
    if not names:
        return targets
    by_name = {target.name: target for target in targets}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise ConfigError("targets", f"{unknown[0]!r} is not a configured WORKSPACE/NAMESPACE")
    return [by_name[name] for name in dict.fromkeys(names)]  # each once, in the order given


class Run:
    # Called with (the run's recorder, run ok) after a real run: self-monitoring and heartbeat.
    after_run: Callable[[Recorder, bool], None] | None = None

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
        self.limits = Limits(
            timedelta(seconds=settings.overlap_window),
            settings.page_size,
            settings.max_pages,
            parallel=min(settings.concurrency, MAX_PARALLEL_PAGES),
        )
        self.jobs = Jobs(source, deadline)
        self.deliverer = Deliverer(  # for outboxes an older version kept per target
            channels,
            RetryPolicy(**settings.delivery.model_dump(exclude={"timeout_s"})),
            RateLimiter(rate_limits(settings, channels)),
        )

    def run(self, targets: list[Target]) -> Summary:
        started = time.monotonic()
        recorder = Recorder()
        names = [receiver.name for receiver in self.settings.receivers]
        workers = max(1, min(self.settings.concurrency, max(len(targets), len(names))))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="run") as pool:
            _each(pool, partial(self.run_target, recorder=recorder), targets)
            _each(pool, partial(self.reroute_receiver, recorder=recorder), self._stranded())
            _each(pool, partial(self.run_receiver, recorder=recorder), names)
        summary = recorder.summary(
            targets=len(targets),
            api_calls=self.source.api_calls,
            duration_ms=int((time.monotonic() - started) * 1000),
            dry_run=self.dry_run,
        )
        if self.after_run is not None and not self.dry_run:
            self.after_run(recorder, summary.ok)
        return summary

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
        snapshot = self.store.snapshot(target, now)
        verdicts, changed = self._verdicts(target, snapshot.checkpoint, report)
        verdicts = self._enrich(target, verdicts)
        plan = self.notifier.stage(target, verdicts, self.jobs, now)
        self._report_plan(target, report, verdicts, plan)
        if snapshot.checkpoint.outbox:
            ttl = max(self.deadline - time.monotonic(), 0) + LEASE_MARGIN_S
            self._deliver_legacy_outbox(self.store.acquire_from(snapshot, ttl, now), now, report)
        elif changed:
            self.store.commit(snapshot)  # after staging: nothing new is lost by a crash

    def _verdicts(
        self, target: Target, checkpoint: Checkpoint, report: Report
    ) -> tuple[list[Verdict], bool]:
        """The new events' verdicts, and whether the checkpoint changed. Only the events a rule
        kept live on: the others (most of a backlog) are freed before the rest of the run."""
        ingested = self._take_in(target, checkpoint, report)
        events = [] if ingested.quiet_start else ingested.events
        return self._classify(target, events), ingested.changed

    def _take_in(self, target: Target, checkpoint: Checkpoint, report: Report) -> Ingested:
        """Ingestion: the target's new events, oldest first, and the boundary moved on."""

        def pages(stream: str) -> Callable[[int], EventsPage]:
            size = self.settings.page_size
            return lambda index: self.source.get_events_page(target, index, size, stream or None)

        # Per target: a namespace discovered after the first run starts at `latest`.
        start = Start.parse(target.start_from) if target.start_from else self.settings.start
        ingested = ingest_target(
            pages, target, checkpoint.stream, start=start, limits=self.limits, clock=self.clock
        )
        report(Kind.FETCHED, ingested.fetched)
        report(Kind.NEW_EVENTS, 0 if ingested.quiet_start else len(ingested.events))
        report(Kind.REQUESTS, ingested.requests)
        return ingested

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
            # Not a warning: the boundary moves on and these alerts reach nobody.
            report(Kind.ERROR, reason=f"{alerts} alerts and no receiver configured (receivers:)")

    def _deliver_legacy_outbox(self, lease: Lease, now: datetime, report: Report) -> None:
        """Alerts staged per target by an older version: delivered as before, then gone."""
        try:
            self.deliverer.deliver_due(
                lease.target, lease.checkpoint, now, partial(self.store.save, lease), report
            )
            report(Kind.PENDING, len(lease.checkpoint.outbox))
            self.store.save(lease, release=True)
        except BaseException:
            self.store.release(lease)
            raise

    def _enrich(self, target: Target, verdicts: list[Verdict]) -> list[Verdict]:
        """Deployment names, console links, and ListJobs' cause of a failure."""
        if not verdicts:
            return verdicts
        names = self._names(target)
        region = target.region or self.settings.region
        named = [replace(v, alert=self._enriched(v.alert, names, region)) for v in verdicts]
        return with_causes(named, target, self.jobs)

    def _names(self, target: Target) -> dict[str, str]:
        try:
            return self.source.list_deployments(target)
        except ApiError as exc:  # names are a nicety; the alert matters more
            log.warning("cannot list deployments of %s: %s", target.name, exc)
            return {}

    def _enriched(self, alert: Alert, names: dict[str, str], region: str) -> Alert:
        event = alert.event
        if not event.deployment_id:
            return alert
        url = self.settings.console_url.format(
            region=region,
            workspace=event.workspace,
            namespace=event.namespace,
            deployment_id=event.deployment_id,
        )
        return replace(alert, deployment_name=names.get(event.deployment_id, ""), console_url=url)


def _each(pool: ThreadPoolExecutor, stage: Callable[[Any], None], items: list[Any]) -> None:
    """One stage over many items: inline for one (a warm run's usual case), else in the pool."""
    if len(items) == 1:
        stage(items[0])
    else:
        list(pool.map(stage, items))


class Wiring:
    """What runs of the same settings can share, so that a warm FC instance keeps it between
    invocations: the renderer (compiled templates), the channels, the HTTP session (keep-alive)
    and the checkpoint store (rebuilt when the credentials it was opened with change)."""

    def __init__(self, settings: Settings) -> None:
        from .channels import make_channel
        from .flink.client import new_session
        from .render import Renderer

        self.settings = settings
        self.renderer = Renderer(settings.templates_dir, settings.timezone)
        self.channels = {
            receiver.name: make_channel(receiver, self.renderer, settings.delivery.timeout_s)
            for receiver in settings.receivers
        }
        self.session = new_session()
        self._store: tuple[Any, CheckpointStore] | None = None

    def store(self, credentials: Callable[[], Any]) -> CheckpointStore:
        """The store's backend (its client and connections) is kept; each run gets a store of
        its own, so its lease owner is its own."""
        from .checkpoint import open_store, parse_location

        settings = self.settings
        local = parse_location(settings.checkpoint, region=settings.region).scheme == "file"
        # Cloud stores sign with the credentials (STS tokens expire): reopen when they change.
        opened_with = None if local else credentials()
        if self._store is None or self._store[0] != opened_with:
            store = open_store(
                settings.checkpoint, region=settings.region, credentials=lambda: opened_with
            )
            self._store = (opened_with, store)
        kept = self._store[1]
        return CheckpointStore(kept.backend, local=kept.local)

    def source(self, credentials: Callable[[], Any], deadline: float) -> EventSource:
        return make_source(
            self.settings, credentials=credentials, deadline=deadline, session=self.session
        )


def make_run(
    settings: Settings,
    *,
    credentials: Callable[[], Any],
    deadline: float,
    dry_run: bool = False,
    out: TextIO | None = None,
    wiring: Wiring | None = None,
) -> Run:
    """Wire the run from configuration. `credentials` is called only if something needs the cloud.
    `wiring` (built from the same settings) is reused instead of building the parts anew."""
    from .channels.base import RecordingChannel
    from .checkpoint.backend import OverlayBackend

    wiring = wiring or Wiring(settings)
    store, channels = wiring.store(credentials), wiring.channels
    if dry_run:  # the same pipeline, with writes kept in memory and channels that only print
        store = CheckpointStore(OverlayBackend(store.backend), store.owner, local=store.local)
        channels = {name: RecordingChannel(channel, out) for name, channel in channels.items()}
    run = Run(
        settings,
        source=wiring.source(credentials, deadline),
        store=store,
        records=RecordStore(store.backend, store.owner, local=store.local),
        channels=channels,
        deadline=deadline,
        dry_run=dry_run,
        out=out,
    )
    if settings.self_alerts is not None or settings.heartbeat_url is not None:
        from .self_monitoring import make_after_run  # here: a cold start without it skips it

        run.after_run = make_after_run(settings, store.backend, wiring.renderer)
    return run


def make_source(
    settings: Settings,
    *,
    credentials: Callable[[], Any],
    deadline: float,
    session: requests.Session | None = None,
) -> EventSource:
    if settings.source:
        from .sources import ReplaySource, replay_path

        return ReplaySource(replay_path(settings.source))
    from .fleet.clients import Accounts, TargetClients
    from .flink.client import FlinkClient

    def client(endpoint: str, creds: Any) -> FlinkClient:
        return FlinkClient(
            endpoint, creds, timeout_s=settings.timeout_s, deadline=deadline, session=session
        )

    return TargetClients(settings, Accounts(settings, credentials()), client)
