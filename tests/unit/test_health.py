"""The bridge's own health: pure transitions, no server."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from flink_alerts.health import HealthState, Observation, Policy, assess

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
POLICY = Policy(failed_runs=3, parked_longer_than_s=900)
TARGETS = {"ws/a", "ws/b"}


def step(state, observations, now=NOW):
    return assess(state, observations, now=now, policy=POLICY)


def failing(error="code=Forbidden.RAM"):
    return Observation(error=error)


def test_three_failed_runs_in_a_row_make_one_degraded_notice_then_one_recovered():
    state, kinds = HealthState(), []
    for seen in [failing(), failing(), failing(), failing(), Observation(), Observation()]:
        state, notices = step(state, {"ws/a": seen})
        kinds.append([n.kind for n in notices])
    assert kinds == [[], [], ["degraded"], [], ["recovered"], []]


def test_the_degraded_notice_says_which_target_and_why():
    state = HealthState()
    for _ in range(3):
        state, notices = step(state, {"ws/a": failing("code=Throttling.User")})
    assert notices[0].problems == ("ws/a: 3 failed runs in a row (last: code=Throttling.User)",)


def test_a_success_resets_the_streak():
    state = HealthState()
    for seen in [failing(), failing(), Observation(), failing(), failing()]:
        state, notices = step(state, {"ws/a": seen})
        assert notices == []


def test_a_receiver_parked_too_long_degrades_and_its_delivery_recovers():
    queued = NOW - timedelta(minutes=16)
    state, notices = step(HealthState(), {"ws/a": Observation(oldest_parked={"oncall": queued})})
    assert [n.kind for n in notices] == ["degraded"]
    assert notices[0].problems == ("receiver oncall: an alert has waited 16 min",)
    state, notices = step(state, {"ws/a": Observation()})
    assert [n.kind for n in notices] == ["recovered"]


def test_parked_for_less_than_the_limit_is_fine():
    queued = NOW - timedelta(minutes=14)
    _, notices = step(HealthState(), {"ws/a": Observation(oldest_parked={"oncall": queued})})
    assert notices == []


def test_shards_see_each_others_targets():
    """A run of shard B (healthy) must not clear what shard A's targets still suffer from."""
    queued = NOW - timedelta(hours=1)
    state, notices = step(HealthState(), {"ws/a": Observation(oldest_parked={"oncall": queued})})
    assert notices and state.degraded
    state, notices = step(state, {"ws/b": Observation()})
    assert notices == [] and state.degraded


def test_targets_unseen_for_a_day_are_forgotten():
    state = HealthState()
    for _ in range(3):
        state, _ = step(state, {"ws/a": failing()})
    state, notices = step(state, {"ws/b": Observation()}, now=NOW + timedelta(hours=23))
    assert notices == [] and set(state.targets) == {"ws/a"}
    state, notices = step(state, {"ws/b": Observation()}, now=NOW + timedelta(hours=24))
    assert [n.kind for n in notices] == ["recovered"] and state.targets == {}


def test_healthy_runs_leave_the_state_as_it_was():
    state, _ = step(HealthState(), {"ws/a": Observation(), "ws/b": Observation()})
    assert state == HealthState()


def test_state_round_trips_through_its_record():
    state = HealthState()
    for _ in range(3):
        state, _ = step(state, {"ws/a": failing()})
    state, _ = step(state, {"ws/b": Observation(oldest_parked={"r": NOW})})
    assert HealthState.from_dict(state.to_dict()) == state


runs = st.lists(
    st.dictionaries(st.sampled_from(sorted(TARGETS)), st.booleans(), max_size=2), max_size=30
)


@given(runs)
def test_notices_alternate_and_match_the_state(history):
    state, kinds = HealthState(), []
    for run in history:
        seen = {name: failing() if failed else Observation() for name, failed in run.items()}
        new, notices = step(state, seen)
        assert len(notices) <= 1
        if notices:
            assert notices[0].kind == ("degraded" if new.degraded else "recovered")
            assert new.degraded != state.degraded
        else:
            assert new.degraded == state.degraded
        kinds += [n.kind for n in notices]
        state = new
    assert all(a != b for a, b in zip(kinds, kinds[1:], strict=False))
    assert not kinds or kinds[0] == "degraded"
