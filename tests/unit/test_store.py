"""Lease and commit logic (store.py) over the file backend: no server needed."""

import json
import os
import socket
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from flink_alerts.checkpoint.backend import OverlayBackend
from flink_alerts.checkpoint.file import FileBackend
from flink_alerts.checkpoint.store import CheckpointStore
from flink_alerts.errors import CheckpointError, LeaseHeldError, LeaseLostError
from flink_alerts.events import Target

TARGET = Target("ws", "ns/1")
T0 = datetime(2026, 11, 26, tzinfo=timezone.utc)


def stores(tmp_path, count=2):
    return [CheckpointStore(FileBackend(tmp_path), owner=f"run{i}") for i in range(count)]


def test_lease_excludes_a_second_run_until_released(tmp_path):
    first, second = stores(tmp_path)
    lease = first.acquire(TARGET, ttl_s=60, now=T0)
    with pytest.raises(LeaseHeldError, match="run0"):
        second.acquire(TARGET, ttl_s=60, now=T0)
    lease.checkpoint.stream("").order = "asc"
    first.save(lease, release=True)
    again = second.acquire(TARGET, ttl_s=60, now=T0)
    assert again.checkpoint.stream("").order == "asc"


def test_stale_lease_is_taken_over_and_the_old_owner_cannot_commit(tmp_path):
    first, second = stores(tmp_path)
    lost = first.acquire(TARGET, ttl_s=60, now=T0)
    taken = second.acquire(TARGET, ttl_s=60, now=T0 + timedelta(seconds=61))
    lost.checkpoint.stream("").order = "desc"
    with pytest.raises(LeaseLostError):
        first.save(lost)
    second.save(taken, release=True)
    checkpoint, lease = second.read(TARGET)
    assert lease is None and not checkpoint.streams


def test_release_after_failure_keeps_only_saved_progress(tmp_path):
    (store,) = stores(tmp_path, 1)
    lease = store.acquire(TARGET, ttl_s=60, now=T0)
    lease.checkpoint.stream("").order = "asc"
    store.save(lease)
    lease.checkpoint.stream("").order = "desc"  # not saved: a failure happens now
    store.release(lease)
    checkpoint, held = store.read(TARGET)
    assert checkpoint.stream("").order == "asc" and held is None


def test_corrupt_file_is_reported_with_its_location_and_reset_recovers(tmp_path):
    (store,) = stores(tmp_path, 1)
    store.save(store.acquire(TARGET, ttl_s=1, now=T0), release=True)
    path = next(tmp_path.glob("*.json"))
    path.write_text(path.read_text()[:-20])
    with pytest.raises(
        CheckpointError, match=r"key ws%2Fns%2F1: checkpoint is not valid JSON.*reset"
    ):
        store.acquire(TARGET, ttl_s=1, now=T0)
    path.write_text("garbage")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        store.read(TARGET)
    store.reset(TARGET)
    checkpoint, _ = store.read(TARGET)
    assert not checkpoint.started


def test_unknown_schema_is_a_clear_error(tmp_path):
    (store,) = stores(tmp_path, 1)
    store.save(store.acquire(TARGET, ttl_s=1, now=T0), release=True)
    path = next(tmp_path.glob("*.json"))
    header, body = path.read_text().split("\n", 1)
    record = json.loads(body)
    record["checkpoint"]["schema"] = 7
    path.write_text(header + "\n" + json.dumps(record))
    with pytest.raises(CheckpointError, match="unknown checkpoint schema 7"):
        store.read(TARGET)


def test_file_backend_is_a_real_compare_and_swap(tmp_path):
    backend = FileBackend(tmp_path)
    assert backend.save("k", b"{}", None)
    assert not backend.save("k", b"{}", None)
    assert not backend.save("k", b"{}", 5)
    assert backend.save("k", b'{"a": 1}', 1)
    assert backend.load("k").version == 2 and backend.load("k").body == b'{"a": 1}'
    assert list(tmp_path.glob(".k.json.*")) == []  # no temp files left behind


def test_file_backend_deletes_a_record_and_its_lock(tmp_path):
    backend = FileBackend(tmp_path)
    assert backend.save("k", b"{}", None) and backend.save("other", b"{}", None)
    backend.delete("k")
    assert backend.load("k") is None and backend.load("other") is not None
    assert sorted(path.name for path in tmp_path.iterdir()) == ["other.json", "other.lock"]
    backend.delete("k")  # nothing there: nothing happens
    assert backend.save("k", b"{}", None) and backend.load("k").version == 1


def test_a_dry_run_deletes_in_memory_only(tmp_path):
    base = FileBackend(tmp_path)
    assert base.save("k", b"{}", None)
    overlay = OverlayBackend(base)
    overlay.delete("k")
    assert overlay.load("k") is None and base.load("k") is not None
    assert overlay.save("k", b"{}", None) and base.load("k").version == 1


def test_unwritable_directory_is_a_checkpoint_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    store = CheckpointStore(FileBackend(blocker / "sub"))
    with pytest.raises(CheckpointError, match="cannot read checkpoint: Not a directory"):
        store.acquire(TARGET, ttl_s=1)


def test_local_lease_of_a_dead_process_is_stale_at_once(tmp_path):
    child = subprocess.Popen(["true"])
    child.wait()
    host = socket.gethostname()
    backend = FileBackend(tmp_path)
    CheckpointStore(backend, owner=f"{host}:{child.pid}:crashed", local=True).acquire(
        TARGET, 600, T0
    )
    with pytest.raises(LeaseHeldError):  # remote stores only trust expiry
        CheckpointStore(backend, owner="other", local=False).acquire(TARGET, 600, T0)
    CheckpointStore(backend, owner=f"{host}:{os.getpid()}:live", local=True).acquire(
        TARGET, 600, T0
    )
    with pytest.raises(LeaseHeldError):  # held by a live process
        CheckpointStore(backend, owner="third", local=True).acquire(TARGET, 600, T0)


class RacingBackend(FileBackend):
    """Another run commits and releases between our load and our save, `races` times."""

    def __init__(self, directory, races: int) -> None:
        super().__init__(directory)
        self.races = races

    def save(self, key, body, expected_version):
        if self.races and b'"owner":"me"' in body:
            self.races -= 1
            other = CheckpointStore(FileBackend(self.directory), owner="other")
            other.save(other.acquire(TARGET, ttl_s=60, now=T0), release=True)
        return super().save(key, body, expected_version)


def test_a_lost_race_with_a_run_that_already_released_is_retried_once(tmp_path):
    lease = CheckpointStore(RacingBackend(tmp_path, races=1), owner="me").acquire(TARGET, 60, T0)
    assert lease.owner == "me"
    with pytest.raises(LeaseHeldError, match="meanwhile"):
        CheckpointStore(RacingBackend(tmp_path / "b", races=2), owner="me").acquire(TARGET, 60, T0)


def test_a_lone_surrogate_from_the_configuration_is_saved_and_read_back_exactly(tmp_path):
    (store,) = stores(tmp_path, 1)
    lease = store.acquire(TARGET, ttl_s=60, now=T0)
    lease.checkpoint.stream("dep-\ud83d").order = "desc"  # a deployment id with half an emoji
    store.save(lease, release=True)
    checkpoint, _ = store.read(TARGET)
    assert checkpoint.stream("dep-\ud83d").order == "desc"
