"""Offline checks of the deployment descriptors: s.yaml through `s preview`, template.yml against
the ROS resource specifications.

The ROS specifications come from the jsii assemblies inside the PyPI packages `ros-cdk-fc3` and
`ros-cdk-ram` (never imported: reading them needs no node): class `Ros<X>` names its `ALIYUN::…`
type in its docs, `Ros<X>Props` lists the properties (camelCase, `optional`), nested structs
likewise. Each check returns a list of problems, one line each; an empty list means valid.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
S_VERSION = "3.1.10"
ROS_PACKAGES = ("ros_cdk_fc3", "ros_cdk_ram")
PSEUDO_PARAMETERS = {
    "ALIYUN::Region",
    "ALIYUN::AccountId",
    "ALIYUN::StackName",
    "ALIYUN::StackId",
    "ALIYUN::NoValue",
}
FC3_PROPS = {
    "region", "functionName", "description", "runtime", "code", "handler", "memorySize",
    "timeout", "role", "environmentVariables", "triggers", "logConfig", "vpcConfig",
    "nasConfig", "instanceConcurrency", "cpu", "diskSize", "internetAccess", "layers",
}  # fmt: skip
TIMER_CONFIG = {"cronExpression", "enable", "payload"}


def tool_missing(reason: str) -> None:
    """On a dev machine a missing tool skips; in CI (env CI set) it fails."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must install it: see .ci/run)")
    pytest.skip(reason)


# --- s.yaml through `s preview` ----------------------------------------------------------


def s_binary() -> Path | None:
    for candidate in (
        os.environ.get("FLINK_ALERTS_S_BIN"),
        REPO / ".ci" / "tools" / "node_modules" / ".bin" / "s",
        shutil.which("s"),
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def s_preview(s_bin: Path, descriptor: Path, home: Path) -> dict[str, Any]:
    """`s preview -o json`, offline: a throwaway HOME and fake credentials in the environment."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "AccessKeyID": "preview-key-id",
        "AccessKeySecret": "preview-secret",
        "AccountID": "1234567890123456",
    }
    done = subprocess.run(
        [str(s_bin), "preview", "-t", descriptor.name, "-o", "json"],
        cwd=descriptor.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # s prints a warning line (e.g. about running as root) before the JSON document, and on
    # some mistakes (an unsupported edition) only tips, exiting 0.
    start = 0 if done.stdout.startswith("{") else done.stdout.find("\n{") + 1
    if done.returncode != 0 or start == 0:
        raise PreviewFailed(f"s preview exited {done.returncode}: {_output(done)}")
    return json.loads(done.stdout[start:])


class PreviewFailed(Exception):
    pass


def _output(done: subprocess.CompletedProcess[str]) -> str:
    lines = (done.stdout + done.stderr).strip().splitlines()
    return " | ".join(line.strip() for line in lines if line.strip())[:2000]


def check_s_preview(doc: dict[str, Any]) -> list[str]:
    problems = [f"unresolved variable at {path}" for path in unresolved(doc)]
    if doc.get("edition") != "3.0.0":
        problems.append(f"edition is {doc.get('edition')!r}, expected '3.0.0'")
    resources = doc.get("resources") or {}
    if len(resources) != 1:
        return [*problems, f"expected one resource, found {len(resources)}"]
    (name, resource), *_ = resources.items()
    if resource.get("component") != "fc3":
        problems.append(f"{name}: component is {resource.get('component')!r}, expected 'fc3'")
    props = resource.get("props") or {}
    problems += [f"{name}: unknown property {key}" for key in sorted(set(props) - FC3_PROPS)]
    problems += _expect(name, props, runtime="python3.10", handler="index.handler")
    memory = props.get("memorySize")
    if not (isinstance(memory, int) and 128 <= memory <= 32768 and memory % 64 == 0):
        problems.append(f"{name}: memorySize {memory!r} is not 128..32768 in steps of 64")
    if not re.fullmatch(r"acs:ram::\d+:role/[\w.-]+", str(props.get("role", ""))):
        problems.append(f"{name}: role {props.get('role')!r} is not a role ARN")
    env = props.get("environmentVariables") or {}
    problems += [f"{name}: environment variable {k} is not a string" for k, v in env.items()
                 if not isinstance(v, str)]  # fmt: skip
    problems += _timer_problems(name, props.get("triggers") or [])
    return problems


def _expect(where: str, props: dict[str, Any], **wanted: Any) -> list[str]:
    return [
        f"{where}: {key} is {props.get(key)!r}, expected {value!r}"
        if key in props
        else f"{where}: missing {key}"
        for key, value in wanted.items()
        if props.get(key) != value
    ]


def _timer_problems(where: str, triggers: list[dict[str, Any]]) -> list[str]:
    if len(triggers) != 1:
        return [f"{where}: expected one timer trigger, found {len(triggers)} triggers"]
    trigger = triggers[0]
    problems = _expect(f"{where} trigger", trigger, triggerType="timer")
    config = trigger.get("triggerConfig") or {}
    if set(config) != TIMER_CONFIG:
        problems.append(
            f"{where} trigger: triggerConfig keys {sorted(config)} != {sorted(TIMER_CONFIG)}"
        )
    return problems


def unresolved(value: Any, path: str = "") -> Iterator[str]:
    """Paths of strings still holding `${`."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from unresolved(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from unresolved(item, f"{path}[{index}]")
    elif isinstance(value, str) and "${" in value:
        yield path


# --- template.yml against the ROS specifications -----------------------------------------


@dataclass
class RosSpec:
    """Resource types, their attributes and every property struct, from the jsii assemblies."""

    properties: dict[str, str] = field(default_factory=dict)  # ALIYUN::X::Y -> props struct fqn
    attributes: dict[str, set[str]] = field(default_factory=dict)  # ALIYUN::X::Y -> {Arn, …}
    structs: dict[str, dict[str, tuple[bool, Any]]] = field(default_factory=dict)

    @classmethod
    def from_installed_packages(cls) -> RosSpec | None:
        spec = cls()
        for package in ROS_PACKAGES:
            found = importlib.util.find_spec(package)  # locates without importing (no jsii/node)
            if found is None or not found.submodule_search_locations:
                return None
            for assembly in Path(list(found.submodule_search_locations)[0], "_jsii").glob("*.tgz"):
                spec.add_assembly(_read_jsii(assembly))
        return spec

    def add_assembly(self, assembly: dict[str, Any]) -> None:
        types = assembly["types"]
        for fqn, kind in types.items():
            if kind["kind"] == "interface":
                self.structs[fqn] = {
                    _ros_name(p["name"]): (bool(p.get("optional")), p["type"])
                    for p in kind.get("properties", [])
                }
            summary = (kind.get("docs") or {}).get("summary", "")
            match = re.search(r"ROS resource type `(ALIYUN::[\w:]+)`", summary)
            if kind["kind"] == "class" and match and f"{fqn}Props" in types:
                self.properties[match.group(1)] = f"{fqn}Props"
                self.attributes[match.group(1)] = {
                    _ros_name(p["name"].removeprefix("attr"))
                    for p in kind.get("properties", [])
                    if p["name"].startswith("attr")
                }


def _read_jsii(path: Path) -> dict[str, Any]:
    with tarfile.open(path) as archive:
        member = archive.extractfile("package/.jsii")
        assert member is not None, f"{path} has no package/.jsii"
        return json.load(member)


def _ros_name(camel: str) -> str:
    return camel[:1].upper() + camel[1:]


def _is_intrinsic(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and len(value) == 1
        and next(iter(value)).startswith(("Fn::", "Ref"))
    )


@dataclass
class _TemplateChecker:
    template: dict[str, Any]
    spec: RosSpec
    problems: list[str] = field(default_factory=list)

    def check(self) -> list[str]:
        if self.template.get("ROSTemplateFormatVersion") != "2015-09-01":
            self.problems.append("ROSTemplateFormatVersion must be '2015-09-01'")
        if "Transform" in self.template:
            self.problems.append(
                "Transform is not native ROS (Funcraft's transform is discontinued)"
            )
        self.problems += [f"unresolved variable at {p}" for p in unresolved(self.template)]
        for name, resource in self.resources.items():
            self._resource(name, resource)
        self._references(self.template, "")
        return self.problems

    @property
    def resources(self) -> dict[str, Any]:
        return self.template.get("Resources") or {}

    def _resource(self, name: str, resource: dict[str, Any]) -> None:
        kind = resource.get("Type", "")
        if kind not in self.spec.properties:
            self.problems.append(f"{name}: unknown resource type {kind!r}")
            return
        if resource.get("Condition") and resource["Condition"] not in self._conditions:
            self.problems.append(f"{name}: unknown condition {resource['Condition']!r}")
        for dependency in resource.get("DependsOn") or []:
            if dependency not in self.resources:
                self.problems.append(f"{name}: DependsOn unknown resource {dependency!r}")
        self._struct(name, self.spec.properties[kind], resource.get("Properties") or {})

    def _struct(self, where: str, fqn: str, value: Any) -> None:
        if _is_intrinsic(value) or not isinstance(value, dict):
            return
        fields = self.spec.structs[fqn]
        for key in value:
            if key not in fields:
                self.problems.append(f"{where}: unknown property {key}")
        for key, (optional, kind) in fields.items():
            if key not in value and not optional:
                self.problems.append(f"{where}: missing required property {key}")
            elif key in value:
                self._typed(f"{where}.{key}", kind, value[key])

    def _typed(self, where: str, kind: dict[str, Any], value: Any) -> None:
        """Descend into struct-typed values (directly, or as list elements)."""
        for option in kind.get("union", {}).get("types", [kind]):
            if option.get("fqn") in self.spec.structs and isinstance(value, dict):
                self._struct(where, option["fqn"], value)
            elements = option.get("collection", {})
            if elements.get("kind") == "array" and isinstance(value, list):
                for index, item in enumerate(value):
                    self._typed(f"{where}[{index}]", elements["elementtype"], item)

    @property
    def _conditions(self) -> dict[str, Any]:
        return self.template.get("Conditions") or {}

    def _references(self, value: Any, where: str) -> None:
        if isinstance(value, list):
            for index, item in enumerate(value):
                self._references(item, f"{where}[{index}]")
            return
        if not isinstance(value, dict):
            return
        known = set(self.template.get("Parameters") or {}) | set(self.resources)
        if "Ref" in value and value["Ref"] not in known | PSEUDO_PARAMETERS:
            self.problems.append(f"{where}: Ref to unknown {value['Ref']!r}")
        if "Fn::GetAtt" in value:
            self._get_att(where, value["Fn::GetAtt"])
        if "Fn::If" in value and value["Fn::If"][0] not in self._conditions:
            self.problems.append(f"{where}: Fn::If on unknown condition {value['Fn::If'][0]!r}")
        for key, item in value.items():
            self._references(item, f"{where}.{key}" if where else key)

    def _get_att(self, where: str, target: list[str]) -> None:
        resource, attribute = target
        kind = self.resources.get(resource, {}).get("Type")
        if kind is None:
            self.problems.append(f"{where}: Fn::GetAtt of unknown resource {resource!r}")
        elif attribute not in self.spec.attributes.get(kind, set()):
            self.problems.append(f"{where}: {kind} has no attribute {attribute!r}")


def check_ros_template(template: dict[str, Any], spec: RosSpec) -> list[str]:
    return _TemplateChecker(template, spec).check()


def check_flink_alerts_template(template: dict[str, Any]) -> list[str]:
    """What the bridge needs beyond a valid template: the function, its timer, its role."""
    resources = template.get("Resources") or {}
    problems: list[str] = []
    for name, resource in resources.items():
        props = resource.get("Properties") or {}
        if resource.get("Type") == "ALIYUN::FC3::Function":
            problems += _expect(name, props, Runtime="python3.10", Handler="index.handler")
        if resource.get("Type") == "ALIYUN::FC3::Trigger":
            problems += _expect(name, props, TriggerType="timer")
            config = props.get("TriggerConfig") or {}
            if set(config) != TIMER_CONFIG:
                problems.append(
                    f"{name}: TriggerConfig keys {sorted(config)} != {sorted(TIMER_CONFIG)}"
                )
    return problems


def granted_actions(template: dict[str, Any]) -> dict[str, set[str]]:
    """Actions the template grants, by the condition under which they are granted ("" = always)."""
    granted: dict[str, set[str]] = {}
    for resource in (template.get("Resources") or {}).values():
        props = resource.get("Properties") or {}
        documents = [props.get("PolicyDocument")] + [
            policy.get("PolicyDocument") for policy in props.get("Policies") or []
        ]
        for document in filter(None, documents):
            for statement in document.get("Statement", []):
                actions = granted.setdefault(resource.get("Condition", ""), set())
                actions.update(statement.get("Action", []))
    return granted
