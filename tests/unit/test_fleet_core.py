"""The pure core of fleet discovery: which scopes, which targets, when to list again."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError

from flink_alerts.checkpoint.file import FileBackend
from flink_alerts.checkpoint.store import NamedRecord
from flink_alerts.errors import ConfigError
from flink_alerts.fleet.config import AccountConfig, DiscoverConfig, endpoint_for
from flink_alerts.fleet.discovery import (
    RETIRED_KEPT,
    Discovery,
    Scope,
    configured,
    discovered,
    due,
    expired,
    merged,
    retired_in,
    scopes,
    selected,
    still_retired,
)
from flink_alerts.settings import Settings, load_settings

ROLE = "acs:ram::222222:role/alerts"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def settings(**values) -> Settings:
    return Settings(region="cn-hangzhou", **values)


def test_targets_auto_discovers_the_own_region() -> None:
    found = scopes(settings(targets="auto"))
    assert [(s.region, s.account) for s in found] == [("cn-hangzhou", "")]
    assert found[0].discover.refresh == 600.0


def test_account_regions_and_endpoint_fall_back_to_the_top_level() -> None:
    config = settings(
        discover={"regions": ["cn-beijing", "cn-shanghai"], "endpoint": "http://h:1"},
        accounts=[
            {"role_arn": ROLE, "targets": "auto"},
            {"role_arn": "acs:ram::3:role/x", "regions": ["eu-central-1"], "discover": {}},
        ],
    )
    found = [(s.region, s.account, s.discover.endpoint_template) for s in scopes(config)]
    assert found == [
        ("cn-beijing", "", "http://h:1"),
        ("cn-shanghai", "", "http://h:1"),
        ("cn-beijing", ROLE, "http://h:1"),
        ("cn-shanghai", ROLE, "http://h:1"),
        ("eu-central-1", "acs:ram::3:role/x", "http://h:1"),
    ]


def test_configured_targets_carry_region_and_account() -> None:
    config = settings(
        targets=[{"workspace": "w", "namespace": "n", "region": "cn-beijing"}],
        accounts=[
            {
                "role_arn": ROLE,
                "regions": ["ap-southeast-1"],
                "targets": [{"workspace": "x", "namespace": "y"}],
            }
        ],
    )
    found = [(t.name, t.region, t.account, t.start_from) for t, _ in configured(config)]
    assert found == [("w/n", "cn-beijing", "", ""), ("x/y", "ap-southeast-1", ROLE, "")]


@pytest.mark.parametrize(
    ("include", "exclude", "expected"),
    [
        (["*"], [], True),
        (["orders/*"], [], True),  # workspace name
        (["f-1/prod"], [], True),  # workspace id
        (["orders"], [], True),  # the workspace alone
        (["*/dev"], [], False),
        (["*"], ["*/prod"], False),
        (["*"], ["orders"], False),
        (["*"], ["f-2"], True),
    ],
)
def test_globs_match_ids_names_and_workspaces(include, exclude, expected) -> None:
    discover = DiscoverConfig(include=include, exclude=exclude)
    assert selected(discover, "f-1", "orders", "prod") is expected


@given(st.lists(st.sampled_from(["a", "b", "c", "d"]), unique=True))
def test_discovered_targets_start_at_latest_and_follow_the_filter(excluded: list[str]) -> None:
    discover = DiscoverConfig(exclude=[f"*/{ns}" for ns in excluded])
    listing = [{"id": "f-1", "name": "one", "namespaces": ["a", "b", "c", "d"]}]
    found = discovered(Scope("cn-x", discover, ROLE), listing, "test")
    assert [t.namespace for t, _ in found] == [ns for ns in "abcd" if ns not in excluded]
    assert all((t.region, t.account, t.start_from) == ("cn-x", ROLE, "latest") for t, _ in found)


def test_due_after_refresh() -> None:
    entry = {"listed_at": NOW.isoformat()}
    assert due(None, 600, NOW)
    assert not due(entry, 600, NOW + timedelta(seconds=599))
    assert due(entry, 600, NOW + timedelta(seconds=600))


def test_merged_keeps_fresh_over_stored_and_drops_unconfigured_scopes() -> None:
    current = {"scopes": {"a": {"v": 1}, "b": {"v": 1}, "gone": {"v": 1}}}
    assert merged(current, {"b": {"v": 2}}, {"a", "b"}) == {
        "scopes": {"a": {"v": 1}, "b": {"v": 2}}
    }
    assert merged(None, {"a": {"v": 2}}, {"a"}) == {"scopes": {"a": {"v": 2}}}


def test_endpoint_for_region() -> None:
    assert endpoint_for("https://ververica.{region}.aliyuncs.com", "cn-beijing") == (
        "https://ververica.cn-beijing.aliyuncs.com"
    )
    assert endpoint_for("http://127.0.0.1:9", "cn-beijing") == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("yaml", "path"),
    [
        ("accounts: [{role_arn: 'arn:aws:iam::1:role/x'}]", "accounts[0].role_arn"),
        ("discover: {refresh: soon}", "discover.refresh"),
        ("discover: {endpoint: 'https://{zone}.x'}", "discover.endpoint"),
        ("endpoint: 'https://h/{region}'", "endpoint"),
        ("accounts: [{role_arn: 'acs:ram::1:role/x', regoins: [a]}]", "accounts[0].regoins"),
        ("targets: everything", "targets"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, yaml: str, path: str) -> None:
    file = tmp_path / "config.yaml"
    file.write_text(yaml)
    with pytest.raises(ConfigError) as error:
        load_settings(file)
    assert error.value.path == path


class _Console:
    """A management API that lists one workspace, or fails."""

    def __init__(self) -> None:
        self.fail = False
        self.calls = 0

    def __call__(self, scope: Scope) -> _Console:
        return self

    def workspaces(self, region: str):
        from flink_alerts.errors import ApiError
        from flink_alerts.fleet.foasconsole import Workspace

        self.calls += 1
        if self.fail:
            raise ApiError("DescribeInstances failed: down", code="InternalError")
        return [Workspace("f-1", "one", region)]

    def namespaces(self, workspace) -> list[str]:
        return ["prod"]


def test_the_listing_is_cached_and_a_failure_keeps_it(tmp_path: Path) -> None:
    record = NamedRecord(FileBackend(tmp_path), "fleet")
    console, clock = _Console(), [NOW]
    discovery = Discovery(settings(targets="auto"), record, console, lambda: clock[0])
    assert [t.name for t in discovery.resolve().targets] == ["f-1/prod"]
    assert [t.name for t in discovery.resolve().targets] == ["f-1/prod"]
    assert console.calls == 1
    clock[0] += timedelta(minutes=10)
    console.fail = True
    fleet = discovery.resolve()
    assert [t.name for t in fleet.targets] == ["f-1/prod"]
    assert fleet.problems == [
        "discovery in cn-hangzhou failed: DescribeInstances failed: down (code=InternalError); "
        f"kept the list from {NOW.isoformat()}"
    ]
    assert console.calls == 2
    console.fail = False
    damaged = [
        b"not json",
        b'{"scopes": {"self|cn-hangzhou|https://foasconsole.{region}.aliyuncs.com": {"listed_at": "now"}}}',
    ]
    for body in damaged:  # a damaged cache is listed again
        assert record.backend.save(record.key, body, record.backend.load(record.key).version)
        assert [t.name for t in discovery.resolve().targets] == ["f-1/prod"]
    assert console.calls == 4


def test_a_dry_run_lists_but_does_not_cache(tmp_path: Path) -> None:
    record = NamedRecord(FileBackend(tmp_path), "fleet")
    discovery = Discovery(settings(targets="auto"), record, _Console(), lambda: NOW, save=False)
    assert [t.name for t in discovery.resolve().targets] == ["f-1/prod"]
    assert record.load() is None


def test_named_record_update_reapplies_after_a_concurrent_save(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path)
    record = NamedRecord(backend, "fleet")
    seen = []

    def change(current):
        seen.append(current)
        if len(seen) == 1:  # another run saves in between
            backend.save(record.key, b'{"other": 1}', None)
        return {**(current or {}), "ours": 1}

    assert record.update(change)
    assert seen == [None, {"other": 1}]
    assert record.load() == {"other": 1, "ours": 1}


def test_concurrent_updates_of_a_named_record_lose_nothing_they_report_saved(
    tmp_path: Path,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    record = NamedRecord(FileBackend(tmp_path), "fleet")

    def add(key: str) -> tuple[str, bool]:
        return key, record.update(lambda current: {**(current or {}), key: True})

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(add, [f"k{n}" for n in range(40)]))
    saved = {key for key, ok in results if ok}
    assert saved and saved <= set(record.load() or {})


class _Namespaces(_Console):
    def __init__(self, *names: str) -> None:
        super().__init__()
        self.names = list(names)

    def namespaces(self, workspace) -> list[str]:
        return list(self.names)


def test_a_vanished_namespace_is_retired_then_its_checkpoint_deleted_after_7_days(
    tmp_path: Path,
) -> None:
    backend = FileBackend(tmp_path)
    record = NamedRecord(backend, "fleet")
    console, clock = _Namespaces("prod", "old"), [NOW]
    discovery = Discovery(settings(targets="auto"), record, console, lambda: clock[0])
    assert [t.name for t in discovery.resolve().targets] == ["f-1/prod", "f-1/old"]
    assert backend.save("f-1%2Fold", b"{}", None)  # its checkpoint, as a run leaves it
    last_listed = clock[0]

    console.names = ["prod"]
    clock[0] += timedelta(days=1)
    assert [t.name for t in discovery.resolve().targets] == ["f-1/prod"]
    assert record.load()["retired"] == {"f-1/old": last_listed.isoformat()}
    clock[0] = last_listed + RETIRED_KEPT - timedelta(seconds=1)
    discovery.resolve()
    assert backend.load("f-1%2Fold") is not None  # kept for the grace period
    clock[0] = last_listed + RETIRED_KEPT + timedelta(minutes=10)  # the next refresh
    discovery.resolve()
    assert backend.load("f-1%2Fold") is None and record.load()["retired"] == {}


def test_a_namespace_back_within_the_grace_period_keeps_its_checkpoint(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path)
    record = NamedRecord(backend, "fleet")
    console, clock = _Namespaces("prod"), [NOW]
    discovery = Discovery(settings(targets="auto"), record, console, lambda: clock[0])
    discovery.resolve()
    assert backend.save("f-1%2Fprod", b"{}", None)
    console.names = []
    clock[0] += timedelta(days=1)
    assert discovery.resolve().targets == []
    console.names = ["prod"]
    clock[0] += timedelta(days=1)
    discovery.resolve()
    assert record.load()["retired"] == {}
    clock[0] += timedelta(days=30)
    discovery.resolve()
    assert backend.load("f-1%2Fprod") is not None


def test_a_configured_target_is_never_deleted_as_retired() -> None:
    retired = {"ws/a": NOW.isoformat(), "ws/b": NOW.isoformat(), "ws/c": "garbage"}
    later = NOW + RETIRED_KEPT
    assert expired(retired_in({"retired": retired}), {"ws/a"}, later) == ["ws/b"]
    assert expired(retired_in({"retired": retired}), set(), later - timedelta(seconds=1)) == []
    assert still_retired({"retired": retired}, {"ws/d": NOW.isoformat()}, {"ws/a"}, {"ws/b"}) == {
        "ws/d": NOW.isoformat()
    }
    assert retired_in({"retired": ["not", "a", "map"]}) == {}


def test_a_dry_run_deletes_nothing(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path)
    record = NamedRecord(backend, "fleet")
    old = (NOW - RETIRED_KEPT).isoformat()
    assert backend.save(record.key, json.dumps({"retired": {"f-1/old": old}}).encode(), None)
    assert backend.save("f-1%2Fold", b"{}", None)
    Discovery(settings(targets="auto"), record, _Console(), lambda: NOW, save=False).resolve()
    assert backend.load("f-1%2Fold") is not None
    Discovery(settings(targets="auto"), record, _Console(), lambda: NOW).resolve()
    assert backend.load("f-1%2Fold") is None


class _SessionNameAsBefore(BaseModel):
    """session_name as first written: length and characters in one pattern."""

    name: str = Field(pattern=r"^[\w.@-]{2,64}$")


@given(st.text(alphabet=st.sampled_from("ab_.@-é1 \n\t/ü日"), max_size=70))
def test_session_name_accepts_exactly_what_the_one_pattern_did(name: str):
    def accepted(model: type[BaseModel], **fields: str) -> bool:
        try:
            model(**fields)
        except ValidationError:
            return False
        return True

    role = "acs:ram::123:role/bridge"
    assert accepted(AccountConfig, role_arn=role, session_name=name) == accepted(
        _SessionNameAsBefore, name=name
    )
