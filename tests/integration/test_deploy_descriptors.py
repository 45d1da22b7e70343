"""s.yaml and template.yml, validated offline; a broken copy of each fails for its reason."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.descriptors import (
    REPO,
    S_VERSION,
    PreviewFailed,
    RosSpec,
    check_flink_alerts_template,
    check_ros_template,
    check_s_preview,
    granted_actions,
    s_binary,
    s_preview,
    tool_missing,
)

# --- s.yaml ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s_bin() -> Path:
    found = s_binary()
    if found is None:
        tool_missing(f"Serverless Devs `s` not found (npm install @serverless-devs/s@{S_VERSION})")
    return found


def preview(s_bin: Path, tmp_path: Path, text: str) -> dict[str, Any]:
    (tmp_path / "home").mkdir(exist_ok=True)
    descriptor = tmp_path / "s.yaml"
    descriptor.write_text(text)
    return s_preview(s_bin, descriptor, tmp_path / "home")


def s_yaml() -> str:
    return (REPO / "s.yaml").read_text()


def test_s_yaml_previews_as_fc3_python310_with_a_timer(s_bin, tmp_path):
    doc = preview(s_bin, tmp_path, s_yaml())
    assert check_s_preview(doc) == []
    props = doc["resources"]["flink-alerts"]["props"]
    assert props["role"] == "acs:ram::1234567890123456:role/flink-alerts"  # the working default
    assert props["triggers"][0]["triggerConfig"]["cronExpression"] == "@every 1m"


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("      handler: index.handler\n", "", "flink-alerts: missing handler"),
        ("triggerType: timer", "triggerType: http", "triggerType is 'http', expected 'timer'"),
        (
            "      runtime: python3.10\n",
            "      runtime: python3.10\n      handlr: x\n",
            "flink-alerts: unknown property handlr",
        ),
        # s leaves an unterminated expression as it is, and exits 0
        ('payload: "{}"', 'payload: "${ vars.schedule"', "unresolved variable at resources"),
    ],
)
def test_a_broken_s_yaml_fails_for_its_reason(s_bin, tmp_path, old, new, problem):
    assert old in s_yaml()
    doc = preview(s_bin, tmp_path, s_yaml().replace(old, new))
    problems = check_s_preview(doc)
    assert any(problem in line for line in problems), problems


@pytest.mark.parametrize(
    ("old", "new", "answer"),
    [
        ("${vars.region}", "${env('NO_SUCH_VARIABLE')}", "NO_SUCH_VARIABLE"),
        ("edition: 3.0.0", "edition: 2.0.0", "Not support template"),  # s exits 0 here
    ],
)
def test_s_preview_itself_refuses(s_bin, tmp_path, old, new, answer):
    with pytest.raises(PreviewFailed, match=answer):
        preview(s_bin, tmp_path, s_yaml().replace(old, new))


# --- template.yml ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ros_spec() -> RosSpec:
    spec = RosSpec.from_installed_packages()
    if spec is None:
        tool_missing(
            "ROS specifications not installed (pip install --no-deps ros-cdk-fc3==1.15.0 ros-cdk-ram==1.15.0)"
        )
    return spec


@pytest.fixture
def template() -> dict[str, Any]:
    return yaml.safe_load((REPO / "template.yml").read_text())


def test_template_is_valid_native_ros(template, ros_spec):
    assert check_ros_template(template, ros_spec) == []
    assert check_flink_alerts_template(template) == []


def test_template_grants_least_privilege_by_configuration(template):
    assert granted_actions(template) == {
        "": {"stream:GetEvents", "stream:ListDeployments", "stream:ListJobs"},
        "UseOss": {
            "oss:GetObject",
            "oss:PutObject",
            "oss:DeleteObject",
            "oss:ListObjects",
            "oss:GetBucketVersioning",
        },  # fmt: skip
        "UseTablestore": {"ots:GetRow", "ots:PutRow", "ots:DeleteRow"},
        "UseLogs": {"log:PostLogStoreLogs"},
        "UseFanOut": {"fc:InvokeFunction"},
        "UseDiscovery": {"stream:DescribeInstances", "stream:DescribeNamespaces"},
        "UseAccounts": {"sts:AssumeRole"},
    }
    trust = template["Resources"]["Role"]["Properties"]["AssumeRolePolicyDocument"]
    assert trust["Statement"] == [
        {
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Principal": {"Service": ["fc.aliyuncs.com"]},
        }
    ]


def _set(template: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    broken = copy.deepcopy(template)
    *parents, last = path.split(".")
    node = broken
    for key in parents:
        node = node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return broken


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        (
            "Resources.Function.Properties.Handler",
            None,
            "Function: missing required property Handler",
        ),
        (
            "Resources.Timer.Properties.TriggerType",
            "http",
            "Timer: TriggerType is 'http', expected 'timer'",
        ),
        (
            "Resources.Function.Properties.Handlr",
            "index.handler",
            "Function: unknown property Handlr",
        ),
        (
            "Resources.Function.Properties.Code.OssObjectName",
            "${CodeObject}",
            "unresolved variable at Resources.Function.Properties.Code.OssObjectName",
        ),  # fmt: skip
        (
            "Resources.Function.Properties.LogConfig",
            {"Project": "p", "LogStore": "s"},
            "Function.LogConfig: unknown property LogStore",
        ),  # fmt: skip
        ("Resources.Timer.Type", "ALIYUN::FC::Trigger", "Timer: unknown resource type"),
        (
            "Resources.Function.Properties.Role",
            {"Fn::GetAtt": ["Role", "Arm"]},
            "has no attribute 'Arm'",
        ),
        ("Resources.Function.Properties.Timeout", {"Ref": "TimeOut"}, "Ref to unknown 'TimeOut'"),
        ("Transform", "Aliyun::Serverless-2018-04-03", "Transform is not native ROS"),
    ],
)
def test_a_broken_template_fails_for_its_reason(template, ros_spec, path, value, problem):
    broken = _set(template, path, value)
    problems = check_ros_template(broken, ros_spec) + check_flink_alerts_template(broken)
    assert any(problem in line for line in problems), problems
