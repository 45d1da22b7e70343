"""After each run: the bridge's own health (health.py decides), its notices, its heartbeat.

The health record lives on the checkpoint Backend under its own key, saved with compare-and-swap,
so concurrent runs (shards, overlapping timers) agree on one transition: the run whose save wins
sends the notice. Notices go straight to the `self_alerts` receiver's channel, not through any
outbox. If the store itself is what fails, the verdict comes from this instance's memory and the
notice is still sent. A notice that cannot be sent is taken back, so a later run sends it again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import requests

from .checkpoint.backend import Backend
from .errors import CheckpointError, DeliveryError
from .events import Alert, Batch, FlinkEvent, Target
from .health import HealthState, Notice, Observation, Policy, assess
from .outcomes import Recorder
from .settings import Settings

log = logging.getLogger("flink_alerts.self_monitoring")

HEALTH_KEY = "bridge-health"  # record keys of targets always hold "%2F": no collision
BRIDGE = Target("flink-alerts", "bridge")
_SAVE_ATTEMPTS = 3
# Last known state per store, for when the store cannot be read or written.
_remembered: dict[str, HealthState] = {}


def observations(recorder: Recorder) -> dict[str, Observation]:
    """Per target and receiver of this run (targets skipped for a held lease say nothing)."""
    seen: dict[str, Observation] = {}
    for where in recorder.places:
        fields = recorder.fields(where)
        if fields["skipped"]:
            continue
        parked = recorder.parked.get(where)
        receiver = where.removeprefix("receiver ")
        seen[where] = Observation(
            error=fields["error"], oldest_parked={receiver: parked} if parked else {}
        )
    return seen


class SelfMonitor:
    def __init__(
        self,
        settings: Settings,
        backend: Backend,
        send: Callable[[Notice, datetime], None],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.send = send  # raises DeliveryError
        self.clock = clock
        config = settings.self_alerts
        self.policy = Policy(config.failed_runs, config.parked_longer_than) if config else Policy()

    def after_run(self, recorder: Recorder) -> list[Notice]:
        """Update the health record; send and return the notices it calls for."""
        now = self.clock()
        seen = observations(recorder)
        try:
            notices = self._update_stored(seen, now)
        except CheckpointError as exc:
            log.warning("health record not kept (%s); deciding from this instance's memory", exc)
            notices = self._update_remembered(seen, now)
        sent = []
        for notice in notices:
            try:
                self.send(notice, now)
                sent.append(notice)
            except DeliveryError as exc:
                log.error("self alert %s not sent, will retry next run: %s", notice.kind, exc)
                self._take_back(notice)
        return sent

    def _decide(self, state: HealthState, seen: dict[str, Observation], now: datetime) -> Any:
        return assess(state, seen, now=now, policy=self.policy)

    def _update_stored(self, seen: dict[str, Observation], now: datetime) -> list[Notice]:
        for _ in range(_SAVE_ATTEMPTS):
            state, version = self._load()
            new, notices = self._decide(state, seen, now)
            if new == state and version is not None:  # nothing to write (saves store requests)
                _remembered[self.backend.describe()] = new
                return notices
            if self._save(new, version):
                _remembered[self.backend.describe()] = new
                return notices
        raise CheckpointError(f"{self.backend.describe()} key {HEALTH_KEY}: kept changing")

    def _update_remembered(self, seen: dict[str, Observation], now: datetime) -> list[Notice]:
        where = self.backend.describe()
        new, notices = self._decide(_remembered.get(where, HealthState()), seen, now)
        _remembered[where] = new
        return notices

    def _take_back(self, notice: Notice) -> None:
        """Undo the transition of an unsent notice, so the next run makes it again."""
        undone = notice.kind == "recovered"  # degraded again until "recovered" gets through
        where = self.backend.describe()
        if where in _remembered:
            _remembered[where] = HealthState(_remembered[where].targets, degraded=undone)
        try:
            for _ in range(_SAVE_ATTEMPTS):
                state, version = self._load()
                if self._save(HealthState(state.targets, degraded=undone), version):
                    return
        except CheckpointError as exc:
            log.warning("health record not updated after an unsent notice: %s", exc)

    def _load(self) -> tuple[HealthState, int | None]:
        stored = self.backend.load(HEALTH_KEY)
        if stored is None:
            return HealthState(), None
        try:
            return HealthState.from_dict(json.loads(stored.body)), stored.version
        except (ValueError, TypeError, AttributeError, KeyError):
            log.warning("health record unreadable; starting it afresh")
            return HealthState(), stored.version

    def _save(self, state: HealthState, version: int | None) -> bool:
        body = json.dumps(state.to_dict(), separators=(",", ":")).encode()
        return self.backend.save(HEALTH_KEY, body, version)


def notice_batch(notice: Notice, receiver: str, now: datetime) -> Batch:
    """The notice as a one-alert batch any channel renders like a Flink alert."""
    title = (
        "flink-alerts bridge degraded" if notice.kind == "degraded" else "flink-alerts recovered"
    )
    event = FlinkEvent(
        event_id=f"bridge:{notice.kind}:{now.isoformat()}",
        event_name="BRIDGE_DEGRADED" if notice.kind == "degraded" else "BRIDGE_RECOVERED",
        created_at=now,
        workspace=BRIDGE.workspace,
        namespace=BRIDGE.namespace,
        message="\n".join([title, *notice.problems]),
    )
    severity = "critical" if notice.kind == "degraded" else "info"
    alert = Alert(event, severity=severity, rule="self_alerts", deployment_name="flink-alerts")
    status = "firing" if notice.kind == "degraded" else "resolved"
    return Batch(receiver, BRIDGE, (alert,), status=status, run_time=now)


def call_heartbeat(url: str, method: str, timeout_s: float) -> bool:
    """The dead-man's switch; failures are logged with the host only (the URL is a secret)."""
    host = urlsplit(url).netloc.rpartition("@")[2]
    try:
        response = requests.request(method, url, timeout=timeout_s)
    except requests.RequestException as exc:
        log.warning("heartbeat to %s failed: %s", host, type(exc).__name__)
        return False
    if response.status_code >= 400:
        log.warning("heartbeat to %s answered HTTP %d", host, response.status_code)
        return False
    return True


def make_after_run(
    settings: Settings, backend: Backend, renderer: Any
) -> Callable[[Recorder, bool], None] | None:
    """The hook for the end of a run, or None when neither self_alerts nor a heartbeat is set."""
    if settings.self_alerts is None and settings.heartbeat_url is None:
        return None
    monitor = (
        SelfMonitor(settings, backend, _sender(settings, renderer))
        if settings.self_alerts
        else None
    )
    timeout_s = settings.delivery.timeout_s

    def after_run(recorder: Recorder, ok: bool) -> None:
        try:
            if monitor is not None:
                monitor.after_run(recorder)
            if ok and settings.heartbeat_url is not None:
                call_heartbeat(
                    settings.heartbeat_url.get_secret_value(), settings.heartbeat_method, timeout_s
                )
        except Exception:  # watching the bridge must never break the bridge
            log.exception("self-monitoring failed")

    return after_run


def _sender(settings: Settings, renderer: Any) -> Callable[[Notice, datetime], None]:
    from .channels import deliver

    assert settings.self_alerts is not None
    receiver = settings.receiver(settings.self_alerts.receiver)

    def send(notice: Notice, now: datetime) -> None:
        batch = notice_batch(notice, receiver.name, now)
        deliver(receiver, renderer, batch, settings.delivery.timeout_s)

    return send
