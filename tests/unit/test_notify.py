"""The notification stages over the file backend: record helper, staging order, crashes."""

from __future__ import annotations

import pytest

from flink_alerts.alerting.records import ReceiverRecord
from flink_alerts.alerting.rules import classify
from flink_alerts.checkpoint.backend import Backend, OverlayBackend, Stored
from flink_alerts.checkpoint.file import FileBackend
from flink_alerts.checkpoint.store import RecordStore
from flink_alerts.errors import LeaseHeldError, LeaseLostError
from flink_alerts.events import Target
from flink_alerts.notify import ALERTING_KEY, Jobs, Notifier, receiver_key
from flink_alerts.outcomes import Recorder
from flink_alerts.settings import Settings
from tests.alerting_data import T0, event, later
from tests.factories import race

TARGET = Target("ws", "ns")
SETTINGS = Settings(receivers=[{"type": "console", "name": n} for n in ("ops", "dev")])


class Crash(Exception):
    pass


class CrashingBackend(Backend):
    """Fails the first save of one key, like a kill between two writes."""

    def __init__(self, base: Backend, key: str) -> None:
        self.base, self.key, self.crashed = base, key, False

    def load(self, key: str) -> Stored | None:
        return self.base.load(key)

    def save(self, key: str, body: bytes, expected_version: int | None) -> bool:
        if key == self.key and not self.crashed:
            self.crashed = True
            raise Crash(key)
        return self.base.save(key, body, expected_version)

    def delete(self, key: str) -> None:
        self.base.delete(key)

    def describe(self) -> str:
        return "crashing"


def stage(records: RecordStore, events, now=T0):
    verdicts = classify(events, SETTINGS.ruleset, {})
    return Notifier(SETTINGS, records, {}).stage(TARGET, verdicts, Jobs(None, 0), now)


def pending(records: RecordStore, name: str) -> list[str]:
    data, _ = records.read(receiver_key(name))
    return [entry.id for entry in ReceiverRecord.from_dict(data).outbox] if data else []


FAILURES = [event("JOB_FAILED", "boom", deployment_id=f"d{i}", event_id=str(i)) for i in range(3)]


def test_a_crash_between_staging_and_the_alerting_record_loses_and_repeats_nothing(tmp_path):
    crashing = RecordStore(CrashingBackend(FileBackend(tmp_path), ALERTING_KEY))
    with pytest.raises(Crash):
        stage(crashing, FAILURES)
    staged = pending(crashing, "ops")
    assert len(staged) == 3  # staged before the crash: nothing lost
    plan = stage(crashing, FAILURES, later(30))  # the same events arrive again
    assert pending(crashing, "ops") == staged and len(plan.notices) == 6
    stage(crashing, FAILURES, later(60))  # and once more, after the alerting record was saved
    assert pending(crashing, "ops") == staged


def incident_counts(records: RecordStore) -> list[int]:
    data, _ = records.read(ALERTING_KEY)
    return [incident["events"] for incident in data["incidents"]]


def test_events_planned_before_are_skipped(tmp_path):
    records = RecordStore(FileBackend(tmp_path))
    assert len(stage(records, FAILURES).notices) == 6
    plan = stage(records, FAILURES, later(5))
    assert plan.notices == [] and plan.outcomes == []
    assert incident_counts(records) == [1, 1, 1]  # not counted twice


def test_concurrent_staging_keeps_every_notice(tmp_path):
    records = [RecordStore(FileBackend(tmp_path), owner=f"run{i}") for i in range(4)]
    batches = [[event("JOB_FAILED", deployment_id=f"d{i}", event_id=f"e{i}")] for i in range(4)]
    race([lambda r=r, b=b: stage(r, b) for r, b in zip(records, batches, strict=True)])
    assert len(pending(records[0], "dev")) == 4


def test_record_lease_lets_others_add_and_merges_their_additions(tmp_path):
    holder, other = (RecordStore(FileBackend(tmp_path), owner=n) for n in ("a", "b"))
    lease = holder.acquire("k", 60, T0)
    with pytest.raises(LeaseHeldError):
        other.acquire("k", 60, T0)
    other.update("k", lambda data: {"items": [*(data or {}).get("items", []), "theirs"]})

    def merge(fresh, ours):
        return {"items": sorted(set(fresh.get("items", [])) | set(ours["items"]))}

    saved = holder.save(lease, {"items": ["mine"]}, merge, release=True)
    assert saved == {"items": ["mine", "theirs"]}
    assert other.acquire("k", 60, T0)  # released


def test_record_lease_taken_over_cannot_save(tmp_path):
    holder, other = (RecordStore(FileBackend(tmp_path), owner=n) for n in ("a", "b"))
    lease = holder.acquire("k", 60, T0)
    other.acquire("k", 60, later(61))
    with pytest.raises(LeaseLostError):
        holder.save(lease, {}, lambda fresh, ours: ours)


def test_the_overlay_keeps_writes_in_memory(tmp_path):
    base = FileBackend(tmp_path)
    base.save("k", b"1", None)
    overlay = OverlayBackend(base)
    assert overlay.save("k", b"2", 1) and not overlay.save("k", b"3", 1)
    assert overlay.load("k").body == b"2" and base.load("k").body == b"1"


class CountingBackend(FileBackend):
    def __init__(self, directory) -> None:
        super().__init__(directory)
        self.saves: list[str] = []

    def save(self, key: str, body: bytes, expected_version: int | None) -> bool:
        self.saves.append(key)
        return super().save(key, body, expected_version)


def test_a_run_with_nothing_new_writes_nothing(tmp_path):
    backend = CountingBackend(tmp_path)
    records = RecordStore(backend)
    notifier = Notifier(SETTINGS, records, {})
    stage(records, [])
    recorder = Recorder()
    notifier.deliver("ops", deadline=0, report=recorder.at("receiver ops"))
    assert (recorder.outcomes, backend.saves) == ([], [])
    stage(records, FAILURES)
    assert sorted(set(backend.saves)) == [ALERTING_KEY, receiver_key("dev"), receiver_key("ops")]
