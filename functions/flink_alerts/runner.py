"""One run over all targets: the whole pipeline, in the order data flows.

    read the checkpoint -> ingest new events -> classify -> enrich -> route
          -> nothing new and nothing due: stop here, having written nothing
          -> stage in the outbox (the save that takes the lease, compare-and-swap on what was read)
          -> deliver what is due, saving after each message -> commit and release

Delivery is at-least-once: alerts are staged in the checkpoint's outbox before anything is
sent, and each delivered message is removed with a save, so a crash repeats at most one message.
Two overlapping runs read the same version; only one can stage (the other is `skipped`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TextIO

from . import rules
from .channels.base import Channel
from .checkpoint.model import Checkpoint, RetryPolicy
from .checkpoint.store import CheckpointStore
from .delivery import Deliverer, DeliveryStats, RateLimiter, due_batches
from .errors import ApiError, ConfigError, FlinkAlertsError, LeaseHeldError
from .events import Alert, EventsPage, Target
from .ingest import Ingested, Limits, Start, ingest_target
from .scrub import scrub
from .self_monitoring import make_after_run, oldest_parked
from .settings import Settings, parse_duration, parse_rate
from .sources import EventSource

if TYPE_CHECKING:
    import requests

log = logging.getLogger("flink_alerts.run")
LEASE_MARGIN_S = 30.0
# Pages of one backlog read at once (beside the targets already read in parallel).
MAX_PARALLEL_PAGES = 8


@dataclass
class Counts:
    """What a run did, per target and in total (the summary line's numbers)."""

    fetched: int = 0
    new_events: int = 0
    alerts: int = 0
    sent: int = 0
    failed: int = 0
    pending: int = 0
    dropped: int = 0

    def add(self, other: Counts) -> None:
        for name in (f.name for f in fields(Counts)):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class TargetResult(Counts):
    target: str = ""
    requests: int = 0
    skipped: bool = False
    error: str = ""
    duration_ms: int = 0
    oldest_parked: dict[str, str] = field(default_factory=dict)  # receiver -> queued at (ISO)


@dataclass
class Summary:
    targets: int = 0
    api_calls: int = 0
    counts: Counts = field(default_factory=Counts)
    skipped: int = 0
    errors: list[str] = field(default_factory=list)
    duration_ms: int = 0
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {
            "targets": data.pop("targets"),
            "api_calls": data.pop("api_calls"),
            **data.pop("counts"),
            **data,
        }


def select_targets(targets: list[Target], names: list[str] | None = None) -> list[Target]:
    if not names:
        return targets
    by_name = {target.name: target for target in targets}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise ConfigError("targets", f"{unknown[0]!r} is not a configured WORKSPACE/NAMESPACE")
    return [by_name[name] for name in names]


def start_from(target: Target, settings: Settings) -> str:
    """Discovered targets start at `latest`; configured ones as configured."""
    return target.start_from or settings.start_from


def route(alerts: list[Alert], settings: Settings) -> list[tuple[str, Alert]]:
    """Every alert to the receivers of every route (a route without `match` catches all)."""
    if settings.routes:
        names = list(dict.fromkeys(n for route in settings.routes for n in route.receivers))
    else:
        names = [receiver.name for receiver in settings.receivers]
    return [(name, alert) for alert in alerts for name in names]


class Run:
    # Called with (target results, run ok) after a real run: self-monitoring and heartbeat.
    after_run: Callable[[list[TargetResult], bool], None] | None = None

    def __init__(
        self,
        settings: Settings,
        *,
        source: EventSource,
        store: CheckpointStore,
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
        self.policy = RetryPolicy(**settings.delivery.model_dump(exclude={"timeout_s"}))
        self.deliverer = Deliverer(
            channels, self.policy, RateLimiter(rate_limits(settings, channels))
        )

    def run(self, targets: list[Target]) -> Summary:
        started = time.monotonic()
        workers = max(1, min(self.settings.concurrency, len(targets)))
        if workers == 1:  # no thread to start for one target (a warm run's usual case)
            results = [self.run_target(target) for target in targets]
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="target") as pool:
                results = list(pool.map(self.run_target, targets))
        summary = Summary(
            targets=len(targets), api_calls=self.source.api_calls, dry_run=self.dry_run
        )
        for result in results:
            summary.counts.add(result)
            summary.skipped += result.skipped
            if result.error:
                summary.errors.append(scrub(f"{result.target}: {result.error}"))
        summary.duration_ms = int((time.monotonic() - started) * 1000)
        if self.after_run is not None and not self.dry_run:
            self.after_run(results, summary.ok)
        return summary

    def run_target(self, target: Target) -> TargetResult:
        started = time.monotonic()
        result = TargetResult(target=target.name)
        try:
            self._run_target(target, result)
        except LeaseHeldError as exc:
            result.skipped = True
            log.info("%s", exc)
        except FlinkAlertsError as exc:
            result.error = str(exc)
        except Exception as exc:  # a bug must not stop the other targets
            log.exception("unexpected error in target %s", target.name)
            result.error = f"unexpected {type(exc).__name__}: {exc}"
        result.duration_ms = int((time.monotonic() - started) * 1000)
        level = logging.ERROR if result.error else logging.INFO
        log.log(level, "target done", extra={"fields": asdict(result)})
        return result

    def _run_target(self, target: Target, result: TargetResult) -> None:
        now = self.clock()
        snapshot = self.store.snapshot(target, now)
        checkpoint = snapshot.checkpoint
        changed = self._take_in(target, checkpoint, now, result)
        if self.dry_run:
            self._preview(target, checkpoint, now, result)
            return
        if not checkpoint.due(now):
            result.pending = len(checkpoint.outbox)
            result.oldest_parked = oldest_parked(checkpoint.outbox)
            if changed:  # new events but nothing to send now: one write, no lease needed
                self.store.commit(snapshot)
            return
        ttl = max(self.deadline - time.monotonic(), 0) + LEASE_MARGIN_S
        lease = self.store.acquire_from(snapshot, ttl, now)  # staged: nothing can be lost now
        try:
            stats = self.deliverer.deliver_due(
                target, lease.checkpoint, now, persist=lambda: self.store.save(lease)
            )
            self._count(result, stats, lease.checkpoint)
            self.store.save(lease, release=True)
        except BaseException:
            self.store.release(lease)
            raise

    def _take_in(
        self, target: Target, checkpoint: Checkpoint, now: datetime, result: TargetResult
    ) -> bool:
        """Ingest, classify, enrich and route new events into the outbox (in memory).
        Returns whether the checkpoint changed."""
        ingested = self._ingest(target, checkpoint)
        alerts = [] if ingested.quiet_start else rules.classify(ingested.events)
        alerts = self._enrich(target, alerts)
        routed = route(alerts, self.settings)
        if alerts and not routed:
            log.warning("%s: %d alerts and no receiver configured", target.name, len(alerts))
        checkpoint.enqueue(routed, now)
        result.fetched, result.alerts = ingested.fetched, len(alerts)
        result.new_events = 0 if ingested.quiet_start else len(ingested.events)
        result.requests = ingested.requests
        return ingested.changed or bool(routed)

    def _ingest(self, target: Target, checkpoint: Checkpoint) -> Ingested:
        def pages(stream: str) -> Callable[[int], EventsPage]:
            size = self.settings.page_size
            return lambda index: self.source.get_events_page(target, index, size, stream or None)

        # Per target: a namespace discovered after the first run starts at `latest`.
        start = Start.parse(start_from(target, self.settings), parse_duration)
        return ingest_target(
            pages, target, checkpoint.stream, start=start, limits=self.limits, clock=self.clock
        )

    def _enrich(self, target: Target, alerts: list[Alert]) -> list[Alert]:
        if not alerts:
            return alerts
        try:
            names = self.source.list_deployments(target)
        except ApiError as exc:  # names are a nicety; the alert matters more
            log.warning("cannot list deployments of %s: %s", target.name, exc)
            names = {}
        region = target.region or self.settings.region
        return [self._enriched(alert, names, region) for alert in alerts]

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

    def _preview(
        self, target: Target, checkpoint: Checkpoint, now: datetime, result: TargetResult
    ) -> None:
        """--dry-run: print what would be sent; send and commit nothing."""
        for _, batch in due_batches(target, checkpoint, now):
            channel = self.channels.get(batch.receiver)
            for message in channel.build(batch) if channel else []:
                print(f"--- would send to {batch.receiver} ({target.name}) ---", file=self.out)
                print(scrub(message.preview()), file=self.out)
        result.pending = len(checkpoint.outbox)

    @staticmethod
    def _count(result: TargetResult, stats: DeliveryStats, checkpoint: Checkpoint) -> None:
        result.sent, result.failed, result.dropped = stats.sent, stats.failed, stats.dropped
        result.pending = len(checkpoint.outbox)
        result.oldest_parked = oldest_parked(checkpoint.outbox)


def rate_limits(settings: Settings, channels: dict[str, Channel]) -> dict[str, tuple[int, float]]:
    limits: dict[str, tuple[int, float]] = {}
    for receiver in settings.receivers:
        channel = channels.get(receiver.name)
        limit = parse_rate(receiver.rate_limit) if receiver.rate_limit else None
        limit = limit or (channel.default_rate if channel else None)
        if limit:
            limits[receiver.name] = limit
    return limits


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
    wiring = wiring or Wiring(settings)
    source = wiring.source(credentials, deadline)
    store = wiring.store(credentials)
    run = Run(
        settings,
        source=source,
        store=store,
        channels=wiring.channels,
        deadline=deadline,
        dry_run=dry_run,
        out=out,
    )
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
