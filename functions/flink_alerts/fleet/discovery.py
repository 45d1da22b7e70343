"""The targets of a run: configured ones plus those discovered per region and account.

Discovery lists workspaces (DescribeInstances, once per region) and their namespaces
(DescribeNamespaces, once per workspace), at most once per `refresh`: the listing is cached in
the checkpoint store as one record (`fleet`), so every run and every warm or cold instance shares
it. A failed listing keeps the last known one and says so. Discovered targets start at `latest`
(a new namespace's old events are not alerted). A namespace that vanished from a listing is
retired: not run again, its checkpoint kept for RETIRED_KEPT after the last listing that had it
(in case it comes back), then deleted. The record remembers retired targets under `retired`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from fnmatch import fnmatchcase
from typing import Any

from ..checkpoint.backend import Backend
from ..checkpoint.store import NamedRecord, record_key
from ..errors import CheckpointError, FlinkAlertsError
from ..events import Target
from .config import DiscoverConfig, endpoint_for
from .foasconsole import Foasconsole

log = logging.getLogger("flink_alerts.fleet")
RECORD_NAME = "fleet"
RETIRED_KEPT = timedelta(days=7)

Listing = list[dict[str, Any]]  # [{"id", "name", "namespaces": [...]}] of one region


@dataclass(frozen=True)
class Scope:
    """One region of one account, listed with one `discover` configuration."""

    region: str
    discover: DiscoverConfig
    account: str = ""  # role ARN; "" = the function's own account

    @property
    def key(self) -> str:
        return f"{self.account or 'self'}|{self.region}|{self.discover.endpoint_template}"

    def describe(self) -> str:
        return self.region + (f" of {self.account}" if self.account else "")


@dataclass
class Fleet:
    entries: list[tuple[Target, str]] = field(default_factory=list)  # target, where it came from
    problems: list[str] = field(default_factory=list)
    names: set[str] = field(default_factory=set, repr=False)  # of the entries' targets

    @property
    def targets(self) -> list[Target]:
        return [target for target, _ in self.entries]

    @classmethod
    def configured(cls, settings: Any) -> Fleet:
        fleet = cls()
        for target, origin in configured(settings):
            fleet.add(target, origin)
        return fleet

    def add(self, target: Target, origin: str) -> None:
        if target.name not in self.names:
            self.entries.append((target, origin))
            self.names.add(target.name)


def scopes(settings: Any) -> list[Scope]:
    top = settings.discover
    found = [Scope(region, top) for region in (top.regions or [settings.region])] if top else []
    for account in settings.accounts:
        if account.discover:
            discover = account.discover
            if discover.endpoint is None and top and top.endpoint:
                discover = discover.model_copy(update={"endpoint": top.endpoint})
            regions = discover.regions or account.regions or _regions(settings)
            found += [Scope(r, discover, account.role_arn) for r in regions]
    return found


def configured(settings: Any) -> list[tuple[Target, str]]:
    own = [(_target(t, t.region or "", ""), "config") for t in settings.targets]
    for account in settings.accounts:
        region = account.regions[0] if account.regions else ""
        own += [
            (_target(t, t.region or region, account.role_arn), f"config, {account.role_arn}")
            for t in account.targets
        ]
    return own


def _target(config: Any, region: str, account: str) -> Target:
    return Target(config.workspace, config.namespace, tuple(config.deployment_ids), region, account)


def _regions(settings: Any) -> list[str]:
    return (settings.discover.regions if settings.discover else []) or [settings.region]


def list_region(console: Foasconsole, region: str, concurrency: int = 4) -> Listing:
    """Every workspace of the region with its namespaces: 1 + (number of workspaces) calls,
    the namespaces of `concurrency` workspaces listed at a time."""
    workspaces = console.workspaces(region)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="discover") as pool:
        namespaces = list(pool.map(console.namespaces, workspaces))
    return [
        {"id": ws.workspace_id, "name": ws.name, "namespaces": names}
        for ws, names in zip(workspaces, namespaces, strict=True)
    ]


def selected(discover: DiscoverConfig, workspace_id: str, name: str, namespace: str) -> bool:
    """Globs match `WORKSPACE/NAMESPACE` (id or name of the workspace) or the workspace alone."""
    candidates = (f"{workspace_id}/{namespace}", f"{name}/{namespace}", workspace_id, name)

    def any_match(globs: list[str]) -> bool:
        return any(fnmatchcase(text, glob) for glob in globs for text in candidates)

    return any_match(discover.include) and not any_match(discover.exclude)


def discovered(scope: Scope, listing: Listing, origin: str) -> list[tuple[Target, str]]:
    return [
        (
            Target(ws["id"], ns, region=scope.region, account=scope.account, start_from="latest"),
            f"{origin}, workspace {ws['name']!r}",
        )
        for ws in listing
        for ns in ws["namespaces"]
        if selected(scope.discover, ws["id"], ws["name"], ns)
    ]


def due(entry: dict[str, Any] | None, refresh_s: float, now: datetime) -> bool:
    if not entry:
        return True
    listed_at = datetime.fromisoformat(entry["listed_at"])
    return now - listed_at >= timedelta(seconds=refresh_s)


def well_formed(entry: Any) -> bool:
    """A cached listing as `_refresh` writes it (anything else is listed again)."""
    try:
        datetime.fromisoformat(entry["listed_at"])
        return all(
            isinstance(ws["id"], str)
            and isinstance(ws["name"], str)
            and all(isinstance(ns, str) for ns in ws["namespaces"])
            for ws in entry["workspaces"]
        )
    except (KeyError, TypeError, ValueError):
        return False


def vanished(scope: Scope, before: dict[str, Any], after: dict[str, Any]) -> dict[str, str]:
    """Targets the earlier listing had and the new one lacks -> when they were last listed."""

    def names(entry: dict[str, Any]) -> set[str]:
        return {target.name for target, _ in discovered(scope, entry["workspaces"], "")}

    gone = names(before) - names(after)
    return dict.fromkeys(sorted(gone), before["listed_at"])


def retired_in(record: dict[str, Any] | None) -> dict[str, str]:
    """The stored retired targets (name -> last listed), what is well formed of them."""
    stored = (record or {}).get("retired")
    if not isinstance(stored, dict):
        return {}
    return {name: at for name, at in stored.items() if _is_time(at) and "/" in name}


def expired(retired: dict[str, str], active: set[str], now: datetime) -> list[str]:
    """Retired targets whose grace period is over (and that did not come back)."""
    horizon = now - RETIRED_KEPT
    return [n for n, at in retired.items() if n not in active and _time(at) <= horizon]


def still_retired(
    current: dict[str, Any] | None, newly: dict[str, str], active: set[str], deleted: set[str]
) -> dict[str, str]:
    """The earliest known retirement wins; targets back in the fleet or deleted are dropped."""
    known = {**newly, **retired_in(current)}
    return {name: at for name, at in known.items() if name not in active | deleted}


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _is_time(text: Any) -> bool:
    try:
        return isinstance(text, str) and _time(text).tzinfo is not None
    except ValueError:
        return False


def merged(current: dict[str, Any] | None, fresh: dict[str, Any], keys: set[str]) -> dict:
    """The record to save: fresh listings over the stored ones, scopes no longer configured
    dropped."""
    stored = (current or {}).get("scopes", {})
    return {"scopes": {k: v for k, v in {**stored, **fresh}.items() if k in keys}}


class Discovery:
    """Resolves the fleet. `console(scope)` gives the foasconsole client of a scope (its
    account's credentials, its region's endpoint) and may raise for an account that cannot be
    reached."""

    def __init__(
        self,
        settings: Any,
        record: NamedRecord | None,
        console: Callable[[Scope], Foasconsole],
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        *,
        save: bool = True,
    ) -> None:
        """`save=False` (--dry-run) lists what is due but leaves the cached record alone."""
        self.settings = settings
        self.record = record
        self.console = console
        self.clock = clock
        self.save = save

    def resolve(self) -> Fleet:
        fleet = Fleet.configured(self.settings)
        wanted = scopes(self.settings)
        if not wanted or self.record is None:
            return fleet
        record = self.record.load()
        stored = (record or {}).get("scopes")
        cached = (
            {k: v for k, v in stored.items() if well_formed(v)} if isinstance(stored, dict) else {}
        )
        now, fresh, retiring = self.clock(), {}, {}
        for scope in wanted:
            entry = cached.get(scope.key)
            if due(entry, scope.discover.refresh, now):
                listed = self._refresh(scope, entry, now, fleet)
                if listed is not None:
                    retiring.update(vanished(scope, entry, listed) if entry else {})
                    entry = fresh[scope.key] = listed
            if entry is not None:
                origin = f"discovered in {scope.describe()} at {entry['listed_at']}"
                for target, where in discovered(scope, entry["workspaces"], origin):
                    fleet.add(target, where)
        if fresh and self.save:
            active = {target.name for target in fleet.targets}
            retired = {**retiring, **retired_in(record)}
            deleted = _delete(self.record.backend, expired(retired, active, now), retired)
            retire = Retirement(retiring, active, deleted)
            _store(self.record, fresh, {scope.key for scope in wanted}, retire)
        return fleet

    def _refresh(
        self, scope: Scope, entry: dict[str, Any] | None, now: datetime, fleet: Fleet
    ) -> dict[str, Any] | None:
        try:
            listing = list_region(self.console(scope), scope.region, self.settings.concurrency)
        except FlinkAlertsError as exc:
            kept = f"kept the list from {entry['listed_at']}" if entry else "no list known yet"
            problem = f"discovery in {scope.describe()} failed: {exc}; {kept}"
            log.warning("%s", problem)
            fleet.problems.append(problem)
            return None
        log.info("discovered %s: %d workspaces", scope.describe(), len(listing))
        return {"listed_at": now.isoformat(), "workspaces": listing}


def _delete(backend: Backend, names: list[str], retired: dict[str, str]) -> set[str]:
    """Delete the checkpoints of targets retired for RETIRED_KEPT; the names deleted."""
    deleted = set()
    for name in names:
        workspace, _, namespace = name.partition("/")
        try:
            backend.delete(record_key(Target(workspace, namespace)))
        except CheckpointError as exc:  # kept as retired: deleted at a later refresh
            log.warning("cannot delete the checkpoint of retired %s: %s", name, exc)
            continue
        log.info("deleted the checkpoint of %s, not discovered since %s", name, retired[name])
        deleted.add(name)
    return deleted


@dataclass(frozen=True)
class Retirement:
    newly: dict[str, str]  # name -> last listed
    active: set[str]  # in this run's fleet
    deleted: set[str]  # checkpoints deleted now

    def apply(self, current: dict[str, Any] | None, record: dict[str, Any]) -> dict[str, Any]:
        return {**record, "retired": still_retired(current, self.newly, self.active, self.deleted)}


def _store(record: NamedRecord, fresh: dict[str, Any], keys: set[str], retire: Retirement) -> None:
    """Best effort: a listing that cannot be cached is listed again next run."""
    try:
        saved = record.update(lambda current: retire.apply(current, merged(current, fresh, keys)))
    except CheckpointError as exc:
        saved = False
        log.warning("cannot cache the discovered fleet: %s", exc)
    if not saved:
        log.warning("the discovered fleet was not cached; the next run lists it again")


def foasconsole_endpoint(scope: Scope) -> str:
    return endpoint_for(scope.discover.endpoint_template, scope.region)
