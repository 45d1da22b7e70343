import json
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from flink_alerts.alerting.incidents import Status
from flink_alerts.alerting.planner import Plan, Planner
from flink_alerts.alerting.records import (
    ALERT_BYTES,
    KEEP_FIRING,
    MAX_APPLIED,
    MAX_INCIDENTS,
    MAX_PENDING,
    AlertingRecord,
    ReceiverRecord,
    trim_message,
)
from flink_alerts.alerting.rules import RulesConfig, classify, ruleset
from tests.alerting_data import T0, event, later, tree

RECEIVERS = ("ding", "slack", "mail")
MB = 1024 * 1024


def java_trace(size: int) -> str:
    head = "java.lang.RuntimeException: boom\n"
    frames = "".join(f"\tat com.example.Job.step{i}(Job.java:{i})\n" for i in range(size // 40))
    return head + frames + "Caused by: java.lang.OutOfMemoryError: Java heap space\n" + frames


def plan_failures(count: int, record: AlertingRecord, now=T0, first=0, trace=10_000):
    events = [
        event("JOB_FAILED", java_trace(trace), deployment_id=f"dep-{i}", at=now, event_id=str(i))
        for i in range(first, first + count)
    ]
    verdicts = classify(events, ruleset(RulesConfig()), {})
    return Planner(tree([], RECEIVERS), (), now).plan(record.state, verdicts)


def test_500_alerts_for_3_receivers_with_10kb_traces_fit_in_1mb_records():
    alerting = AlertingRecord()
    plan = plan_failures(500, alerting)
    records = {name: ReceiverRecord(name) for name in RECEIVERS}
    for record in records.values():
        assert record.stage(plan.notices, T0) == 500
    sizes = [len(json.dumps(r.to_dict()).encode()) for r in records.values()]
    sizes.append(len(json.dumps(alerting.to_dict()).encode()))
    assert max(sizes) <= MB, sizes
    ding = records["ding"]
    assert len(ding.outbox) == MAX_PENDING and sum(ding.folded.values()) == 300
    assert all(len(e.alert.event.message.encode()) <= ALERT_BYTES for e in ding.outbox)


def test_folded_backlog_is_reported_by_the_next_message_then_cleared():
    record = ReceiverRecord("ding")
    record.stage(plan_failures(MAX_PENDING + 30, AlertingRecord()).notices, T0)
    (entries, batch), *rest = record.batches(T0)
    assert batch.omitted == 30 and all(b.omitted == 0 for _, b in rest)
    record.delivered("ding", tuple(e.alert.key for e in entries[1:]))
    assert record.folded  # not the message that carried the count
    record.delivered("ding", (entries[0].alert.key,))
    assert record.folded == {}


def test_staging_the_same_notices_again_adds_nothing():
    notices = plan_failures(3, AlertingRecord()).notices
    record = ReceiverRecord("ding")
    assert record.stage(notices, T0) == 3
    assert record.stage(notices, later(60)) == 0


def test_records_round_trip():
    alerting = AlertingRecord()
    notices = plan_failures(2, alerting).notices
    alerting.mark_applied(["a"], T0)
    record = ReceiverRecord("mail")
    record.stage(notices, T0)
    again = ReceiverRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert [e.to_dict() for e in again.outbox] == [e.to_dict() for e in record.outbox]
    back = AlertingRecord.from_dict(json.loads(json.dumps(alerting.to_dict())))
    assert back.state.log == alerting.state.log and back.applied == alerting.applied
    assert back.state.incidents.keys() == alerting.state.incidents.keys()


HOUR = {"root": 3600.0}


def only_incident(record: AlertingRecord):
    (incident,) = record.state.incidents.values()
    return incident


def test_prune_forgets_old_ids_and_old_resolved_incidents():
    alerting = AlertingRecord()
    plan_failures(1, alerting)
    alerting.mark_applied(["old"], T0)
    alerting.mark_applied(["new"], later(3 * 86400))
    only_incident(alerting).status = Status.RESOLVED
    alerting.prune(T0 + timedelta(days=8), HOUR)
    assert alerting.applied == {} or "old" not in alerting.applied
    assert alerting.state.incidents == {} and alerting.state.log == {}


def test_a_firing_incident_quiet_for_7_days_is_forgotten_with_its_log():
    alerting = AlertingRecord()
    plan_failures(1, alerting)
    alerting.prune(T0 + KEEP_FIRING - timedelta(seconds=1), HOUR)
    assert only_incident(alerting).status is Status.FIRING and alerting.state.log
    alerting.prune(T0 + KEEP_FIRING, HOUR)
    assert alerting.state.incidents == {} and alerting.state.log == {}


def test_a_new_event_keeps_a_firing_incident():
    alerting = AlertingRecord()
    plan_failures(1, alerting)
    plan_failures(1, alerting, now=T0 + timedelta(days=5))
    alerting.prune(T0 + timedelta(days=9), HOUR)
    assert only_incident(alerting).events == 2


def test_a_firing_incident_is_kept_for_a_repeat_interval_longer_than_7_days():
    alerting = AlertingRecord()
    plan_failures(1, alerting)
    alerting.prune(T0 + timedelta(days=9), {"root": 10 * 86400.0})
    assert only_incident(alerting)
    alerting.prune(T0 + timedelta(days=10), {"root": 10 * 86400.0})
    assert alerting.state.incidents == {}


def test_an_old_backlog_is_not_forgotten_as_it_is_notified():
    alerting = AlertingRecord()
    old = T0 - timedelta(days=30)
    verdicts = classify([event("JOB_FAILED", "boom", at=old)], ruleset(RulesConfig()), {})
    Planner(tree([], RECEIVERS), (), T0).plan(alerting.state, verdicts)
    alerting.prune(T0 + timedelta(days=6), HOUR)
    assert only_incident(alerting).last_at == old


def test_a_resolved_incident_is_kept_for_its_repeat_window_then_forgotten():
    alerting = AlertingRecord()
    plan_failures(1, alerting)
    planner = Planner(tree([], RECEIVERS), (), later(600))
    planner.resolve_incident(alerting.state, only_incident(alerting), Plan(), "running")
    alerting.prune(later(600 + 3599), HOUR)
    assert only_incident(alerting).status is Status.RESOLVED
    alerting.prune(later(600 + 3600), HOUR)
    assert alerting.state.incidents == {} and alerting.state.log == {}


def test_a_resolved_incident_nobody_heard_of_is_forgotten_at_once():
    alerting = AlertingRecord()
    plan_failures(1, alerting)
    alerting.state.log.clear()
    only_incident(alerting).status = Status.RESOLVED
    alerting.prune(T0, HOUR)
    assert alerting.state.incidents == {}


def test_the_alerting_record_stays_under_1mb_over_days_of_new_incidents():
    """500 new incidents a day that never resolve, and a restart loop of 200 events per run."""
    alerting = AlertingRecord()
    for day in range(4):
        now = T0 + timedelta(days=day)
        plan_failures(500, alerting, now=now, first=day * 500)
        alerting.mark_applied([f"ws/ns/{day}-{i}" for i in range(200 * 144)], now)
        alerting.prune(now, HOUR)
        size = len(json.dumps(alerting.to_dict()).encode())
        assert size <= MB, (day, size)
    assert len(alerting.state.incidents) == MAX_INCIDENTS
    kept = [i.last_at for i in alerting.state.incidents.values()]
    assert kept.count(T0 + timedelta(days=3)) == 500  # the quietest went first
    assert min(kept) == T0 + timedelta(days=2)
    assert len(alerting.applied) == MAX_APPLIED


def test_trim_keeps_exception_lines_and_top_frames():
    text = trim_message(java_trace(10_000), 100_000)
    assert "Caused by: java.lang.OutOfMemoryError" in text
    assert text.count("\tat ") == 6
    assert len(trim_message(java_trace(10_000), 300).encode()) <= 300


def test_a_partial_delivery_retries_only_the_recipients_left():
    from flink_alerts.checkpoint.outbox import RetryPolicy

    record = ReceiverRecord("mail")
    record.stage(plan_failures(1, AlertingRecord()).notices, T0)
    ((entries, batch),) = record.batches(T0)
    assert batch.only_to == ()
    keys = tuple(e.alert.key for e in entries)
    policy = RetryPolicy(initial_backoff=0, max_backoff=0)
    kept = record.failed(
        "mail",
        keys,
        error="450",
        retryable=True,
        retry_after=None,
        now=T0,
        policy=policy,
        retry_only=("lead@example.com",),
    )
    assert kept == []
    again = ReceiverRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    ((_, retry),) = again.batches(later(1))
    assert retry.only_to == ("lead@example.com",)


@settings(max_examples=15, deadline=None)
@given(batches=st.lists(st.integers(0, 150), min_size=1, max_size=4))
def test_the_backlog_is_bounded_and_every_alert_is_pending_or_counted(batches):
    record, staged = ReceiverRecord("ding"), 0
    for number, size in enumerate(batches):
        alerting = AlertingRecord()
        notices = plan_failures(size, alerting, later(number), first=staged, trace=200).notices
        staged += record.stage([n for n in notices if n.receiver == "ding"], later(number))
        assert len(record.outbox) <= MAX_PENDING
        assert len(record.outbox) + sum(record.folded.values()) == staged


@settings(max_examples=20, deadline=None)
@given(
    days=st.lists(st.integers(0, 20), min_size=1, max_size=6),
    resolve=st.lists(st.booleans(), min_size=1, max_size=6),
)
def test_prune_keeps_exactly_the_incidents_that_can_still_matter(days, resolve):
    alerting, now = AlertingRecord(), T0
    for index, day in enumerate(sorted(days)):
        now = T0 + timedelta(days=day)
        plan_failures(3, alerting, now=now, first=index * 3, trace=100)
        if resolve[index % len(resolve)]:
            planner = Planner(tree([], RECEIVERS), (), now)
            incident = alerting.state.incidents[
                f"target=ws/ns|deployment=dep-{index * 3}|rule=failure"
            ]
            planner.resolve_incident(alerting.state, incident, Plan(), "running")
    before = dict(alerting.state.incidents)
    alerting.prune(now, HOUR)
    for fingerprint, incident in before.items():
        firing = incident.status is Status.FIRING
        matters = now - incident.last_at < (KEEP_FIRING if firing else timedelta(hours=1))
        assert (fingerprint in alerting.state.incidents) == matters
    assert {fingerprint for _, fingerprint in alerting.state.log} <= set(alerting.state.incidents)
