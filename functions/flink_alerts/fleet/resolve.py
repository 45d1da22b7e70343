"""The entry of `run` (CLI and FC handler) and `targets`: resolve the fleet, then run it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..checkpoint.store import CheckpointStore, NamedRecord
from .clients import Accounts
from .discovery import RECORD_NAME, Discovery, Fleet, scopes


def resolve_fleet(
    settings: Any,
    store: CheckpointStore,
    credentials: Callable[[], Any],
    accounts: Accounts | None = None,
    *,
    save: bool = True,
) -> Fleet:
    """Configured targets, plus discovered ones when `discover`/`accounts` ask for them.
    `credentials` is called only when something must be discovered."""
    if not scopes(settings):
        return Fleet.configured(settings)
    accounts = accounts or Accounts(settings, credentials())
    record = NamedRecord(store.backend, RECORD_NAME)
    return Discovery(settings, record, accounts.foasconsole, save=save).resolve()


def run_fleet(
    run: Any, credentials: Callable[[], Any], names: list[str] | None, *, strict: bool = True
) -> Any:
    """One run over the resolved fleet (or the `names` of it); discovery problems lead the
    summary's errors. Not `strict` (a timer's payload): a name the fleet no longer has is an
    error of its own, and the other names still run."""
    from ..runner import select_targets

    accounts = getattr(run.source, "accounts", None)
    fleet = resolve_fleet(run.settings, run.store, credentials, accounts, save=not run.dry_run)
    gone: list[str] = []
    if names and not strict:
        known = {target.name for target in fleet.targets}
        gone = [name for name in names if name not in known]
        names = [name for name in names if name in known]
    # A payload whose every name is gone runs nothing, not everything.
    selected = select_targets(fleet.targets, names) if names or not gone else []
    summary = run.run(selected)
    summary.errors[:0] = fleet.problems + [
        f"payload: {name!r} is neither configured nor discovered now; skipped" for name in gone
    ]
    return summary
