"""Lease and commit over any Backend: the one place where concurrency is handled.

A record is `{"lease": {"owner", "expires_at"} | null, "checkpoint": {...}}`, saved with
compare-and-swap. A run takes the lease (CAS), saves progress under it (CAS on the version it
last wrote, so a run whose lease was taken over cannot commit), and releases it on the last save.
Like Powertools' idempotency layer: the state machine lives here, backends only load/save.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from ..errors import CheckpointError, LeaseHeldError, LeaseLostError
from ..events import Target
from .backend import Backend, Stored
from .model import Checkpoint


def new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def record_key(target: Target) -> str:
    return quote(target.name, safe="")


@dataclass
class Snapshot:
    """A record as read, without taking the lease: a run that finds nothing to do writes nothing."""

    target: Target
    key: str
    version: int | None  # None: never saved
    checkpoint: Checkpoint
    lease: dict[str, Any] | None


@dataclass
class Lease:
    target: Target
    key: str
    owner: str
    expires_at: datetime
    version: int  # the version we last wrote; our next save must find exactly this one
    checkpoint: Checkpoint
    saved: dict[str, Any]  # the checkpoint as last saved, for a release after a failure


class CheckpointStore:
    def __init__(self, backend: Backend, owner: str | None = None, *, local: bool = False) -> None:
        """`local`: records live on this machine only, so a lease of a dead local process is stale."""
        self.backend = backend
        self.owner = owner or new_owner()
        self.local = local

    def where(self, target: Target) -> str:
        return f"{self.backend.describe()} key {record_key(target)}"

    def snapshot(self, target: Target, now: datetime | None = None) -> Snapshot:
        """Read the record (one load); LeaseHeldError while another live run holds its lease."""
        key = record_key(target)
        stored = self.backend.load(key)
        checkpoint, lease = self._parse(stored, target)
        self._check_free(target, lease, now or datetime.now(timezone.utc))
        return Snapshot(target, key, stored.version if stored else None, checkpoint, lease)

    def acquire_from(self, snapshot: Snapshot, ttl_s: float, now: datetime) -> Lease:
        """Take the lease by saving the snapshot's checkpoint (as changed since) with a
        compare-and-swap on the version read: if another run wrote in between, this run's
        reading is stale and it stops (LeaseHeldError) before sending anything."""
        expires_at = now + timedelta(seconds=ttl_s)
        held = {"owner": self.owner, "expires_at": expires_at.isoformat()}
        body = snapshot.checkpoint.to_dict()
        if not self.backend.save(snapshot.key, _body(body, held), snapshot.version):
            raise LeaseHeldError(
                f"{snapshot.target.name}: another run saved this target's checkpoint meanwhile"
            )
        version = (snapshot.version or 0) + 1
        return Lease(
            snapshot.target,
            snapshot.key,
            self.owner,
            expires_at,
            version,
            snapshot.checkpoint,
            body,
        )

    def commit(self, snapshot: Snapshot) -> None:
        """Save the snapshot's checkpoint without a lease, if nobody wrote since it was read."""
        body = _body(snapshot.checkpoint.to_dict(), None)
        if not self.backend.save(snapshot.key, body, snapshot.version):
            raise LeaseHeldError(
                f"{snapshot.target.name}: another run saved this target's checkpoint meanwhile"
            )

    def acquire(self, target: Target, ttl_s: float, now: datetime | None = None) -> Lease:
        """Take the target's lease, or raise LeaseHeldError while another live run holds it."""
        now = now or datetime.now(timezone.utc)
        # A lost race is looked at once more: the winner may already have released the lease.
        for attempt in range(2):
            try:
                return self.acquire_from(self.snapshot(target, now), ttl_s, now)
            except LeaseHeldError:
                if attempt:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_free(self, target: Target, lease: dict[str, Any] | None, now: datetime) -> None:
        if lease and lease["owner"] != self.owner and not self._stale(lease, now):
            raise LeaseHeldError(
                f"{target.name}: another run ({lease['owner']}) holds the checkpoint lease "
                f"until {lease['expires_at']}"
            )

    def save(self, lease: Lease, *, release: bool = False) -> None:
        """Persist the lease's checkpoint; refuse (LeaseLostError) if another run took over."""
        held = (
            None if release else {"owner": lease.owner, "expires_at": lease.expires_at.isoformat()}
        )
        saved = lease.checkpoint.to_dict()
        if not self.backend.save(lease.key, _body(saved, held), lease.version):
            raise LeaseLostError(
                f"{lease.target.name}: the checkpoint lease was taken over by another run; "
                "this run's progress was not committed"
            )
        lease.version += 1
        lease.saved = saved

    def _stale(self, lease: dict[str, str], now: datetime) -> bool:
        return lease_is_stale(lease, now, local=self.local)

    def release(self, lease: Lease) -> None:
        """Give the lease back without committing unsaved progress (best effort, after a failure)."""
        try:
            if self.backend.save(lease.key, _body(lease.saved, None), lease.version):
                lease.version += 1
        except CheckpointError:
            pass  # the lease expires by itself

    def read(self, target: Target) -> tuple[Checkpoint | None, dict[str, Any] | None]:
        """The stored checkpoint and lease (for `checkpoint show`); None when never saved."""
        stored = self.backend.load(record_key(target))
        if stored is None:
            return None, None
        return self._parse(stored, target)

    def reset(self, target: Target) -> bool:
        """Replace whatever is stored (even a corrupt record) with an empty checkpoint; False
        (and nothing written) when nothing is stored, which already means a first run."""
        key = record_key(target)
        stored = self.backend.load(key)
        if stored is None:
            return False
        empty = Checkpoint().to_dict()
        if not self.backend.save(key, _body(empty, None), stored.version if stored else None):
            raise CheckpointError(f"{target.name}: the checkpoint changed during reset; try again")
        return True

    def _parse(self, stored: Stored | None, target: Target) -> tuple[Checkpoint, dict | None]:
        if stored is None:
            return Checkpoint(), None
        where = self.where(target)
        try:
            record = json.loads(stored.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CheckpointError(
                f"{where}: checkpoint is not valid JSON ({exc}); inspect with "
                "`flink-alerts checkpoint show`, recover with `flink-alerts checkpoint reset`"
            ) from None
        if not isinstance(record, dict) or "checkpoint" not in record:
            raise CheckpointError(f"{where}: not a flink-alerts checkpoint record")
        lease = record.get("lease")
        if lease is not None and not _valid_lease(lease):
            raise CheckpointError(
                f"{where}: malformed lease {json.dumps(lease)[:200]} (expected null or "
                '{"owner": "...", "expires_at": "<ISO time with zone>"}); set it to null, or '
                "`flink-alerts checkpoint reset` to start over"
            )
        return Checkpoint.from_dict(record["checkpoint"], where=where), lease


def lease_is_stale(lease: dict[str, str], now: datetime, *, local: bool) -> bool:
    """Expired, or (for records on this machine) held by a local process that died."""
    if datetime.fromisoformat(lease["expires_at"]) <= now:
        return True
    return local and _dead_local_process(lease["owner"])


def _dead_local_process(owner: str) -> bool:
    """True when `owner` names a process of this host that no longer runs (e.g. killed)."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _valid_lease(lease: Any) -> bool:
    if not isinstance(lease, dict) or not isinstance(lease.get("owner"), str):
        return False
    try:
        return datetime.fromisoformat(lease["expires_at"]).tzinfo is not None
    except (KeyError, TypeError, ValueError):
        return False


def _body(checkpoint: dict[str, Any], lease: dict[str, str] | None) -> bytes:
    return encode({"lease": lease, "checkpoint": checkpoint})


def encode(document: Any) -> bytes:
    """Compact UTF-8 JSON; with `\\u` escapes when a string holds a lone surrogate (from
    configuration or an API), which UTF-8 cannot carry but JSON escapes round-trip exactly."""
    try:
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:
        return json.dumps(document, separators=(",", ":")).encode()


class NamedRecord:
    """A JSON document of its own beside the targets' records (e.g. the discovered fleet), saved
    with the same compare-and-swap. Its name has no `/`, so it never meets a target's key.
    Meant for caches: an unreadable record reads as missing and the next update replaces it."""

    def __init__(self, backend: Backend, name: str) -> None:
        self.backend = backend
        self.key = quote(name, safe="")

    def load(self) -> dict[str, Any] | None:
        return self._parse(self.backend.load(self.key))

    def update(self, change: Callable[[dict[str, Any] | None], dict[str, Any]]) -> bool:
        """Save `change(current)`; on a concurrent save, apply it again to the newer record.
        False when others kept winning (the record stays as they left it)."""
        for _ in range(3):
            stored = self.backend.load(self.key)
            body = encode(change(self._parse(stored)))
            if self.backend.save(self.key, body, stored.version if stored else None):
                return True
        return False

    @staticmethod
    def _parse(stored: Stored | None) -> dict[str, Any] | None:
        try:
            record = json.loads(stored.body) if stored else None
        except (ValueError, UnicodeDecodeError):
            return None
        return record if isinstance(record, dict) else None


# --- any other record: notification state per receiver, incidents ---------------------------

MAX_CAS_ATTEMPTS = 20


@dataclass
class RecordLease:
    key: str
    owner: str
    expires_at: datetime
    version: int
    data: dict[str, Any] | None


class RecordStore:
    """JSON records `{"lease", "record"}` on the same Backend, changed only by compare-and-swap.

    `update` applies a pure change and retries it on a fresh copy when another run wrote in
    between (for additions that many runs make, like staging). A lease gives one run the right
    to take things out (delivery); others may still add while it is held, and the holder's
    `save` merges their additions in.
    """

    def __init__(self, backend: Backend, owner: str | None = None, *, local: bool = False) -> None:
        self.backend = backend
        self.owner = owner or new_owner()
        self.local = local

    def read(self, key: str) -> tuple[dict[str, Any] | None, int | None]:
        """The record and its version (None, None when never saved)."""
        data, _, version = self._load(key)
        return data, version

    def put(self, key: str, data: dict[str, Any], version: int | None) -> bool:
        """Save a record nobody leases if it is still at `version`; False when it changed."""
        return self.backend.save(key, _record(data, None), version)

    def update(self, key: str, change: Callable[[dict[str, Any] | None], dict[str, Any]]) -> None:
        """Apply `change` to the current record; retried on a fresh copy after a lost race."""
        for _ in range(MAX_CAS_ATTEMPTS):
            data, lease, version = self._load(key)
            if self.backend.save(key, _record(change(data), lease), version):
                return
        raise CheckpointError(f"{self.backend.describe()} key {key}: too many concurrent writers")

    def acquire(self, key: str, ttl_s: float, now: datetime) -> RecordLease:
        data, lease, version = self._load(key)
        if (
            lease
            and lease["owner"] != self.owner
            and not lease_is_stale(lease, now, local=self.local)
        ):
            raise LeaseHeldError(
                f"{key}: another run ({lease['owner']}) is delivering until {lease['expires_at']}"
            )
        expires_at = now + timedelta(seconds=ttl_s)
        held = {"owner": self.owner, "expires_at": expires_at.isoformat()}
        if not self.backend.save(key, _record(data or {}, held), version):
            raise LeaseHeldError(f"{key}: another run took the lease just now")
        return RecordLease(key, self.owner, expires_at, (version or 0) + 1, data)

    def save(
        self,
        lease: RecordLease,
        data: dict[str, Any],
        merge: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]],
        *,
        release: bool = False,
    ) -> dict[str, Any]:
        """Save under the lease; what others added meanwhile is merged in (`merge(fresh, ours)`)."""
        held = (
            None if release else {"owner": lease.owner, "expires_at": lease.expires_at.isoformat()}
        )
        for _ in range(MAX_CAS_ATTEMPTS):
            if self.backend.save(lease.key, _record(data, held), lease.version):
                lease.version += 1
                return data
            fresh, current, lease.version = self._load(lease.key)
            if not current or current["owner"] != lease.owner:
                raise LeaseLostError(f"{lease.key}: the lease was taken over by another run")
            data = merge(fresh or {}, data)
        raise CheckpointError(
            f"{self.backend.describe()} key {lease.key}: too many concurrent writers"
        )

    def inspect(self, key: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The record and its lease as stored (for `checkpoint show`); (None, None) if never saved."""
        data, lease, _ = self._load(key)
        return data, lease

    def reset(self, key: str, empty: dict[str, Any]) -> None:
        """Replace whatever is stored (even a corrupt record, even under a lease) with `empty`."""
        stored = self.backend.load(key)
        if not self.backend.save(key, _record(empty, None), stored.version if stored else None):
            raise CheckpointError(f"{key}: the record changed during reset; try again")

    def _load(self, key: str) -> tuple[dict[str, Any] | None, dict | None, int | None]:
        stored = self.backend.load(key)
        if stored is None:
            return None, None, None
        try:
            record = json.loads(stored.body)
            return record["record"], record.get("lease"), stored.version
        except (ValueError, UnicodeDecodeError, KeyError, TypeError):
            raise CheckpointError(
                f"{self.backend.describe()} key {key}: not a flink-alerts record; inspect it with "
                "`flink-alerts checkpoint show`, start over with `flink-alerts checkpoint reset`"
            ) from None


def _record(data: dict[str, Any], lease: dict[str, str] | None) -> bytes:
    return encode({"lease": lease, "record": data})
