import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from flink_alerts.alerting.matchers import Match, Subject
from tests.alerting_data import event

SUBJECT = Subject(
    event("JOB_FAILED", "java.lang.OutOfMemoryError", namespace="prod", workspace="w1"),
    deployment_name="etl-orders",
    severity="critical",
)


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ({}, True),
        ({"event_name": "JOB_FAILED"}, True),
        ({"event_name": "JOB_RESTARTED"}, False),
        ({"event_name": ["X", "JOB_FAILED"]}, True),
        ({"message": "OutOfMemory"}, True),
        ({"message": "^OutOfMemory"}, False),  # searched, but anchors still count
        ({"message": "(?i)outofmemory"}, True),
        ({"message": "outofmemory"}, False),
        ({"workspace": "w1"}, True),
        ({"workspace": "w2"}, False),
        ({"namespace": "prod"}, True),
        ({"namespace": ["dev", "staging"]}, False),
        ({"deployment": "etl-*"}, True),
        ({"deployment": "ETL-*"}, False),
        ({"deployment": "etl-orders"}, True),
        ({"deployment": "etl"}, False),
        ({"deployment_id": "dep-1"}, True),
        ({"deployment_id": "dep-2"}, False),
        ({"severity": "critical"}, True),
        ({"severity": ["warning", "info"]}, False),
        ({"namespace": "prod", "deployment": "etl-*", "severity": "critical"}, True),
        ({"namespace": "prod", "deployment": "etl-*", "severity": "warning"}, False),
    ],
)
def test_each_key_must_match(match, expected):
    assert Match.model_validate(match).matches(SUBJECT) is expected


def test_severity_unknown_yet_does_not_match():
    unknown = Subject(SUBJECT.event, "etl-orders", None)
    assert not Match(severity="critical").matches(unknown)


@pytest.mark.parametrize(
    "bad", [{"message": "("}, {"severity": "fatal"}, {"pod": "x"}, {"namespace": 3}]
)
def test_bad_matchers_are_refused(bad):
    with pytest.raises(ValidationError):
        Match.model_validate(bad)


def test_regex_is_compiled_once_at_load():
    assert Match(message="fail").message.pattern == "fail"


names = st.sampled_from(["prod", "dev", "etl-a", "etl-b", ""])


@given(namespace=names, other=names, deployment=names)
def test_all_keys_means_conjunction(namespace, other, deployment):
    subject = Subject(event(namespace=namespace), deployment_name=deployment)
    both = Match(namespace=other, deployment=deployment or "nothing")
    alone = [Match(namespace=other), Match(deployment=deployment or "nothing")]
    assert both.matches(subject) == all(m.matches(subject) for m in alone)
