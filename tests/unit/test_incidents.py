from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flink_alerts.alerting.incidents import Incident, Reason, Sent, Status, decide
from flink_alerts.alerting.matchers import Subject
from flink_alerts.alerting.planner import Planner, State
from flink_alerts.alerting.routing import matching_routes
from flink_alerts.alerting.rules import RulesConfig, classify, ruleset
from flink_alerts.events import Alert
from tests.alerting_data import T0, event, later, silences, tree

RULES = ruleset(RulesConfig())
FAILED = "from RUNNING to FAILED is completed"
RUNNING = "from STARTING to RUNNING is completed"
ROUTE = tree([{"receivers": ["ops"], "repeat_interval": "10m"}]).children[0]


def incident(events=1, status=Status.FIRING) -> Incident:
    found = Incident.open("fp", Alert(event()))
    found.events, found.status = events, status
    return found


def sent(status=Status.FIRING, ago=0.0, events=1) -> Sent:
    return Sent(status, T0 - timedelta(seconds=ago), events, ("ops",))


@pytest.mark.parametrize(
    ("incident_", "sent_", "silenced", "reason", "count"),
    [
        (incident(), None, False, Reason.NEW, 1),
        (incident(), None, True, Reason.SILENCED, 0),
        (incident(5), sent(Status.RESOLVED, ago=9999, events=9), False, Reason.NEW, 5),
        (incident(3), sent(ago=60), False, Reason.FOLDED, 0),
        (incident(3), sent(ago=600), False, Reason.REPEAT_DUE, 2),
        (incident(3), sent(ago=600), True, Reason.SILENCED, 0),
        (incident(1), sent(ago=600), False, Reason.UNCHANGED, 0),
        (incident(status=Status.RESOLVED), sent(), False, Reason.RESOLVED, 0),
        (incident(status=Status.RESOLVED), sent(), True, Reason.SILENCED, 0),
        (incident(status=Status.RESOLVED), None, False, Reason.NOT_HEARD, 0),
        (incident(status=Status.RESOLVED), sent(Status.RESOLVED), False, Reason.NOT_HEARD, 0),
    ],
)
def test_decide(incident_, sent_, silenced, reason, count):
    decision = decide(incident_, sent_, ROUTE, silenced=silenced, now=T0)
    assert (decision.reason, decision.count) == (reason, count)
    assert decision.notify == (reason in (Reason.NEW, Reason.REPEAT_DUE, Reason.RESOLVED))


def test_send_resolved_off_means_no_resolved_notice():
    quiet = tree([{"receivers": ["ops"], "send_resolved": False}]).children[0]
    decision = decide(incident(status=Status.RESOLVED), sent(), quiet, silenced=False, now=T0)
    assert decision.reason is Reason.NOT_HEARD


def run(state, events, now, routes=None, silence=()):
    planner = Planner(routes or tree([{"receivers": ["ops"]}]), silence, now)
    return planner.plan(state, classify(events, RULES, {}))


def restarts(count, start, step=1.0):
    return [
        event(
            "JOB_FAILED",
            "restarting",
            at=start + timedelta(seconds=i * step),
            event_id=f"{start}:{i}",
        )
        for i in range(count)
    ]


def test_a_restart_loop_folds_into_one_message_then_one_digest_with_the_true_count():
    state, notices = State(), []
    for minute in (0, 4, 8):  # 200 restarts over three runs within ten minutes
        batch = restarts(67 if minute < 8 else 66, later(minute * 60))
        plan = run(state, batch, later(minute * 60 + 59))
        notices += plan.notices
    assert [n.reason for n in notices] == [Reason.NEW]
    assert notices[0].count == 1
    digest = run(state, [], later(3600 + 59)).notices
    assert [(n.reason, n.count) for n in digest] == [(Reason.REPEAT_DUE, 199)]
    assert run(state, [], later(7200)).notices == []  # nothing new: nothing to say


def test_failure_then_running_is_one_alert_and_one_resolved_notice():
    state = State()
    fired = run(state, [event("X", FAILED)], later(10))
    resolved = run(state, [event("X", RUNNING, at=later(20))], later(30))
    assert [n.reason for n in fired.notices] == [Reason.NEW]
    assert [(n.reason, n.status) for n in resolved.notices] == [(Reason.RESOLVED, Status.RESOLVED)]
    assert resolved.resolved == 1
    again = run(state, [event("X", FAILED, at=later(40))], later(50))
    assert [n.reason for n in again.notices] == [Reason.NEW]


def test_running_without_a_known_failure_says_nothing():
    assert run(State(), [event("X", RUNNING)], T0).notices == []


def test_resolved_goes_only_to_receivers_that_heard_it_even_after_a_config_change():
    state = State()
    run(state, [event("X", FAILED)], T0, tree([{"receivers": ["ops", "db"]}], ("ops", "db")))
    changed = tree([{"match": {"namespace": "elsewhere"}, "receivers": ["new"]}], ("new",))
    resolved = run(state, [event("X", RUNNING, at=later(5))], later(10), changed)
    assert sorted(n.receiver for n in resolved.notices) == ["db", "ops"]


def test_silenced_alerts_are_counted_not_sent_and_told_after_the_silence():
    window = silences([{"match": {"namespace": "ns"}, "starts_at": T0, "ends_at": later(600)}])
    state = State()
    quiet = run(state, restarts(5, T0), later(60), silence=window)
    assert quiet.notices == [] and quiet.count(Reason.SILENCED) == 5
    after = run(state, restarts(1, later(700)), later(720), silence=window)
    assert [(n.reason, n.count) for n in after.notices] == [(Reason.NEW, 6)]


def test_group_wait_delays_the_first_notice_only():
    routes = tree([{"receivers": ["ops"], "group_wait": "30s", "repeat_interval": "1m"}])
    state = State()
    first = run(state, restarts(1, T0), T0, routes).notices[0]
    assert first.not_before == later(30)
    repeat = run(state, restarts(2, later(120)), later(121), routes).notices[0]
    assert repeat.reason is Reason.REPEAT_DUE and repeat.not_before == later(121)


def test_notice_ids_are_deterministic():
    one = run(State(), restarts(1, T0), T0).notices
    two = run(State(), restarts(1, T0), T0).notices
    assert [n.id for n in one] == [n.id for n in two] and one[0].id


# --- properties ---------------------------------------------------------------------------

ROUTES = tree(
    [
        {"match": {"namespace": "prod"}, "receivers": ["ops"], "continue": True},
        {"match": {"deployment_id": "d1"}, "receivers": ["dev", "db"], "repeat_interval": "2m"},
        {"match": {"severity": "warning"}, "receivers": ["db"], "send_resolved": False},
    ],
    ("ops", "dev", "db"),
)
SILENCE = silences(
    [{"match": {"deployment_id": "d2"}, "starts_at": later(300), "ends_at": later(900)}]
)
one_event = st.tuples(
    st.sampled_from(["prod", "dev"]),
    st.sampled_from(["d1", "d2", "d3"]),
    st.sampled_from([FAILED, "restarting", RUNNING]),
)
QUEUED = (Reason.NEW, Reason.REPEAT_DUE)
runs = st.lists(
    st.tuples(st.integers(1, 400), st.lists(one_event, max_size=8)), min_size=1, max_size=12
)


@settings(max_examples=150, deadline=None)
@given(runs=runs)
def test_every_firing_alert_has_exactly_one_outcome_per_route(runs):
    state, now, serial = State(), T0, 0
    told: set[tuple[str, str]] = set()  # (receiver, fingerprint) told it fires, not yet resolved
    for step, raw in runs:
        now += timedelta(seconds=step)
        events = []
        for namespace, deployment, message in raw:
            serial += 1
            events.append(
                event(
                    "X",
                    message,
                    namespace=namespace,
                    deployment_id=deployment,
                    at=now,
                    event_id=str(serial),
                )
            )
        verdicts = classify(events, RULES, {})
        plan = Planner(ROUTES, SILENCE, now).plan(state, verdicts)
        firing_ids = {v.alert.key for v in verdicts if v.action == "alert"}
        per_alert: dict[tuple[str, str], list[Reason]] = {}
        for outcome in plan.outcomes:
            if outcome.cause in firing_ids:
                per_alert.setdefault((outcome.cause, outcome.route), []).append(outcome.reason)
        for verdict in (v for v in verdicts if v.action == "alert"):
            for route in matching_routes(ROUTES, Subject.of(verdict.alert)):
                reasons = per_alert.get((verdict.alert.key, route.path), [])
                assert len(reasons) == 1, (verdict.alert.key, route.path, reasons)
                assert reasons[0] in (*QUEUED, Reason.FOLDED, Reason.SILENCED)
                if reasons[0] in QUEUED:
                    queued = {
                        (n.receiver, n.route)
                        for n in plan.notices
                        if n.alert.key == verdict.alert.key
                    }
                    assert {(r, route.path) for r in route.receivers} <= queued
        for notice in plan.notices:
            key = (notice.receiver, notice.fingerprint)
            if notice.status is Status.RESOLVED:
                assert key in told, notice
                told.discard(key)
            else:
                told.add(key)


def test_a_failure_after_a_silent_recovery_is_new_again():
    routes = tree([{"receivers": ["ops"], "send_resolved": False}])
    state = State()
    run(state, [event("X", FAILED)], T0, routes)
    assert run(state, [event("X", RUNNING, at=later(5))], later(5), routes).notices == []
    again = run(state, [event("X", FAILED, at=later(9))], later(10), routes)
    assert [n.reason for n in again.notices] == [Reason.NEW]
