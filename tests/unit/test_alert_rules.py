import pytest

from flink_alerts.alerting.rules import RulesConfig, classify, fingerprint, ruleset
from tests.alerting_data import event

DEFAULTS = ruleset(RulesConfig())


def verdicts(events, config=None, names=None):
    rules = ruleset(RulesConfig.model_validate(config or []))
    return classify(events, rules, names or {})


def only(events, config=None, names=None):
    (verdict,) = verdicts(events, config, names)
    return verdict


@pytest.mark.parametrize(
    ("name", "message", "action", "severity"),
    [
        ("JOB_FAILED", "Cannot transition from FAILED to RUNNING", "alert", "critical"),
        ("X", "timed out waiting for job to transition to RUNNING", "alert", "critical"),
        ("X", "Deployment did not transition to RUNNING in time", "alert", "critical"),
        ("STATE_TRANSITION_IS_COMPLETED", "from STARTING to RUNNING is completed", "resolve", None),
        ("STATE_TRANSITION_IS_COMPLETED", "recovered after failover -> RUNNING", "resolve", None),
        ("STATE_TRANSITION_IS_COMPLETED", "作业状态变为 RUNNING", "resolve", None),
        (
            "STATE_TRANSITION_IS_COMPLETED",
            "from RUNNING to FAILED is completed",
            "alert",
            "critical",
        ),
        ("X", "Job is restarting", "alert", "warning"),
        ("EVENTS_NOT_SHOWN", "380 older events not shown", "alert", "warning"),
        ("UNREADABLE_EVENT", "event id=? name=? raw=garbage", "alert", "warning"),
    ],
)
def test_defaults(name, message, action, severity):
    verdict = only([event(name, message)])
    assert verdict.action == action
    if severity:
        assert verdict.alert.severity == severity


def test_defaults_ignore_everything_else():
    assert verdicts([event("STATE_TRANSITION_IS_COMPLETED", "from RUNNING to CANCELLED")]) == []


def test_user_rules_come_first_and_first_match_wins():
    config = [
        {"name": "quiet-dev", "match": {"namespace": "dev"}, "action": "ignore"},
        {"name": "oom", "match": {"message": "OutOfMemory"}, "severity": "info"},
        {"name": "never", "match": {"message": "OutOfMemory"}, "severity": "warning"},
    ]
    oom = event("JOB_FAILED", "OutOfMemoryError")
    assert only([oom], config).alert.rule == "oom"
    assert only([oom], config).alert.severity == "info"
    assert verdicts([event("JOB_FAILED", "OutOfMemoryError", namespace="dev")], config) == []
    # no user rule matches: the built-in failure rule still does
    assert only([event("JOB_FAILED", "boom")], config).alert.rule == "failure"


def test_defaults_can_be_turned_off():
    config = {"defaults": False, "rules": [{"match": {"event_name": "MY_EVENT"}}]}
    assert verdicts([event("JOB_FAILED", "boom")], config) == []
    assert only([event("MY_EVENT")], config).alert.rule == "rules[0]"


def test_user_resolve_rule():
    config = [{"match": {"event_name": "JOB_HEALTHY"}, "action": "resolve"}]
    assert only([event("JOB_HEALTHY")], config).action == "resolve"


def test_deployment_names_are_matched_when_given():
    config = [{"match": {"deployment": "etl-*"}, "severity": "info", "name": "etl"}]
    named = only([event("JOB_FAILED")], config, names={"dep-1": "etl-orders"})
    assert named.alert.rule == "etl" and named.alert.deployment_name == "etl-orders"
    assert only([event("JOB_FAILED")], config).alert.rule == "failure"
    assert ruleset(RulesConfig.model_validate(config))[0].needs_names


def test_fingerprint_is_target_deployment_rule_unless_the_rule_says():
    a, b = event(at=event().created_at), event(event_id="other")
    assert only([a]).fingerprint == only([b]).fingerprint
    assert only([a]).fingerprint != only([event(deployment_id="dep-2")]).fingerprint
    assert only([a]).fingerprint != only([event(namespace="ns2")]).fingerprint
    per_event = [{"match": {}, "fingerprint": ["event"]}]
    assert only([a], per_event).fingerprint != only([b], per_event).fingerprint
    assert fingerprint(only([a]).alert, ("namespace",)) == "namespace=ns"


def test_order_is_kept():
    events = [event("JOB_FAILED", event_id=str(i)) for i in range(5)]
    assert [v.alert.key for v in verdicts(events)] == ["0", "1", "2", "3", "4"]
