"""Whole-fleet runs end to end: 3 regions × 4 workspaces × 5 namespaces discovered through the
local foasconsole server, GetEvents per region, other accounts through the local STS server.

Every client uses the real host names (`ververica.{region}.aliyuncs.com`, …) through a local
proxy that hands each request to that host's local server: a request sent to the wrong region
reaches a server that does not know the workspace, and fails.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from flink_alerts.checkpoint.file import FileBackend
from flink_alerts.cli import main
from flink_alerts.credentials import Credentials
from flink_alerts.fleet import sts
from flink_alerts.fleet.discovery import RETIRED_KEPT
from tests.integration.test_run import delivered_ids, run
from tests.servers.flink_server import FlinkServer
from tests.servers.host_proxy import HostProxy
from tests.servers.receiver import ReceiverServer
from tests.servers.rpc_servers import FoasconsoleServer, StsServer

REGIONS = ["cn-hangzhou", "cn-shanghai", "cn-beijing"]
NAMESPACES = [f"ns-{n}" for n in range(5)]
OWN = Credentials("LTAI-own-account", "own-secret-7d1e")
GOOD_ROLE = "acs:ram::222222:role/flink-alerts"
BAD_ROLE = "acs:ram::333333:role/flink-alerts"


def workspace_id(region: str, index: int) -> str:
    return f"f-{region}-{index}"


@dataclass
class Fleet:
    flink: dict[str, FlinkServer]
    console: FoasconsoleServer
    sts: StsServer
    receiver: ReceiverServer
    proxy: HostProxy
    tmp_path: Path
    servers: list[Any] = field(default_factory=list)

    def config(self, **extra: Any) -> Path:
        config: dict[str, Any] = {
            "region": "cn-hangzhou",
            "endpoint": "http://ververica.{region}.aliyuncs.com",
            "sts_endpoint": "http://sts.aliyuncs.com",
            "discover": {
                "regions": REGIONS,
                "endpoint": "http://foasconsole.{region}.aliyuncs.com",
                "refresh": "10m",
            },
            "checkpoint": f"file://{self.tmp_path / 'checkpoints'}",
            "start_from": "earliest",  # discovered targets must still start at latest
            "receivers": [{"name": "hook", "type": "webhook", "url": self.receiver.url}],
            "delivery": {"initial_backoff": "0s", "max_backoff": "0s"},
            **extra,
        }
        path = self.tmp_path / "config.yaml"
        path.write_text(json.dumps(config))
        return path

    def add_namespace(self, region: str, workspace: str, namespace: str) -> None:
        self.console.add_namespace(workspace, namespace)
        self.flink[region].namespaces.add(namespace)


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    options = {"access_key_id": OWN.access_key_id, "access_key_secret": OWN.access_key_secret}
    flink = {region: FlinkServer(**options).start() for region in REGIONS}
    console, sts_server = FoasconsoleServer(**options).start(), StsServer(**options).start()
    for region in REGIONS:
        for index in range(4):
            ws = workspace_id(region, index)
            console.add_workspace(region, ws, f"team-{index}", NAMESPACES)
            flink[region].workspaces.add(ws)
        flink[region].namespaces.update(NAMESPACES)
    hosts: dict[str, Any] = {f"ververica.{r}.aliyuncs.com": flink[r] for r in REGIONS}
    hosts |= {f"foasconsole.{r}.aliyuncs.com": console for r in REGIONS}
    hosts["sts.aliyuncs.com"] = sts_server
    with HostProxy(hosts) as proxy, ReceiverServer() as receiver:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("http_proxy", raising=False)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", OWN.access_key_id)
        monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", OWN.access_key_secret)
        monkeypatch.delenv("ALIBABA_CLOUD_SECURITY_TOKEN", raising=False)
        monkeypatch.setattr(sts, "SESSIONS", sts.RoleSessions())
        yield Fleet(flink, console, sts_server, receiver, proxy, tmp_path)
    for server in [*flink.values(), console, sts_server]:
        server.stop()


def targets_of(capsys, config: Path) -> tuple[int, list[dict[str, Any]]]:
    code = main(["targets", "--config", str(config)])
    out = capsys.readouterr()
    targets_of.stderr = out.err
    return code, [json.loads(line) for line in out.out.splitlines()]


def failure(workspace: str, namespace: str, event_id: str, when: datetime) -> dict[str, Any]:
    return {
        "eventId": event_id,
        "eventName": "STATE_TRANSITION_IS_COMPLETED",
        "createdAt": when,
        "deploymentId": "dep-1",
        "jobId": "job-1",
        "message": "The state transition of deployment d from RUNNING to FAILED is completed.",
        "workspace": workspace,
        "namespace": namespace,
    }


def requests_served(fleet: Fleet) -> int:
    """Every request the local Flink, foasconsole and STS servers answered."""
    flink = sum(server.request_count() for server in fleet.flink.values())
    return flink + fleet.console.request_count() + fleet.sts.request_count()


def test_three_regions_four_workspaces_five_namespaces(fleet: Fleet, capsys) -> None:
    config = fleet.config()
    code, listed = targets_of(capsys, config)
    assert code == 0, targets_of.stderr
    assert len(listed) == 60
    for item in listed:
        assert item["target"].startswith(f"f-{item['region']}-")
        assert item["start_from"] == "latest" and item["account"] == "own"
        assert item["origin"].startswith(f"discovered in {item['region']} at ")
    assert fleet.console.request_count("DescribeInstances") == 3
    assert fleet.console.request_count("DescribeNamespaces") == 12

    code, summary = run(capsys, config)
    assert code == 0, run.stderr
    assert summary["targets"] == 60 and summary["errors"] == []
    assert summary["api_calls"] == 60  # the listing is cached: GetEvents only
    for region in REGIONS:  # each region's GetEvents went to that region's endpoint
        assert fleet.flink[region].request_count("GetEvents") == 20
    # Within `refresh`, the listing comes from the checkpoint store: no management API call.
    assert fleet.console.request_count("DescribeInstances") == 3
    assert fleet.console.request_count("DescribeNamespaces") == 12
    assert (fleet.tmp_path / "checkpoints" / "fleet.json").is_file()


def test_new_namespace_starts_at_latest_and_a_removed_one_is_retired(fleet: Fleet, capsys) -> None:
    config = fleet.config(discover={**json.loads(fleet.config().read_text())["discover"]})
    raw = json.loads(config.read_text())
    raw["discover"]["refresh"] = "1ms"
    config.write_text(json.dumps(raw))
    assert run(capsys, config)[1]["targets"] == 60

    hangzhou = workspace_id("cn-hangzhou", 0)
    fleet.add_namespace("cn-hangzhou", hangzhou, "ns-new")
    old = datetime(2024, 1, 1, tzinfo=timezone.utc)
    fleet.flink["cn-hangzhou"].add_events([failure(hangzhou, "ns-new", "old-failure", old)])
    removed = workspace_id("cn-shanghai", 1)
    fleet.console.remove_namespace(removed, "ns-4")

    code, summary = run(capsys, config)
    assert code == 0 and summary["errors"] == []
    assert summary["targets"] == 60  # one new, one retired
    assert fleet.receiver.bodies == []  # its old failure is not alerted
    assert (fleet.tmp_path / "checkpoints" / f"{removed}%2Fns-4.json").is_file()  # kept

    now = datetime.now(timezone.utc)
    fleet.flink["cn-hangzhou"].add_events([failure(hangzhou, "ns-new", "new-failure", now)])
    code, summary = run(capsys, config)
    assert code == 0 and summary["sent"] == 1
    assert delivered_ids(fleet.receiver) == ["new-failure"]


def test_a_retired_namespace_checkpoint_is_deleted_after_the_grace_period(
    fleet: Fleet, capsys
) -> None:
    raw = json.loads(fleet.config().read_text())
    raw["discover"]["refresh"] = "1ms"
    config = fleet.tmp_path / "config.yaml"
    config.write_text(json.dumps(raw))
    assert run(capsys, config)[1]["targets"] == 60
    removed = workspace_id("cn-beijing", 2)
    fleet.console.remove_namespace(removed, "ns-0")
    assert run(capsys, config)[1]["errors"] == []
    store = FileBackend(fleet.tmp_path / "checkpoints")
    checkpoint = f"{removed}%2Fns-0"
    assert store.load(checkpoint) is not None  # kept for a while
    fleet_record = store.load("fleet")
    record = json.loads(fleet_record.body)
    assert list(record["retired"]) == [f"{removed}/ns-0"]
    # As if the grace period had passed: the last listing with it was 7 days ago.
    record["retired"][f"{removed}/ns-0"] = (datetime.now(timezone.utc) - RETIRED_KEPT).isoformat()
    assert store.save("fleet", json.dumps(record).encode(), fleet_record.version)
    code, summary = run(capsys, config)
    assert code == 0 and summary["errors"] == [] and summary["targets"] == 59
    assert store.load(checkpoint) is None
    assert json.loads(store.load("fleet").body)["retired"] == {}
    assert store.load(f"{removed}%2Fns-1") is not None  # its neighbours stay


def test_a_failed_discovery_keeps_the_last_list_and_says_so(fleet: Fleet, capsys) -> None:
    raw = json.loads(fleet.config().read_text())
    raw["discover"]["refresh"] = "1ms"
    config = fleet.tmp_path / "config.yaml"
    config.write_text(json.dumps(raw))
    assert run(capsys, config)[0] == 0
    fleet.console.inject("forbidden", times=3, action="DescribeInstances")
    code, summary = run(capsys, config)
    assert code == 1
    assert summary["targets"] == 60
    assert len(summary["errors"]) == 3
    for error in summary["errors"]:
        assert "failed" in error and "kept the list from" in error
        assert "stream:DescribeInstances" in error  # the RAM action to grant


def test_an_account_that_cannot_be_assumed_fails_only_its_own_targets(fleet: Fleet, capsys) -> None:
    issued = fleet.sts.add_role(GOOD_ROLE)
    fleet.sts.add_role(BAD_ROLE)
    fleet.sts.denied.add(BAD_ROLE)
    for server in (fleet.flink["cn-shanghai"], fleet.console):
        server.accept(issued)
    fleet.console.add_workspace("cn-shanghai", "f-other", "other", ["prod"], owner=issued)
    fleet.flink["cn-shanghai"].workspaces.add("f-other")
    fleet.flink["cn-shanghai"].namespaces.add("prod")
    accounts = [
        {"role_arn": GOOD_ROLE, "regions": ["cn-shanghai"], "targets": "auto"},
        {
            "role_arn": BAD_ROLE,
            "regions": ["cn-beijing"],
            "targets": [
                {"workspace": "f-bad", "namespace": "a"},
                {"workspace": "f-bad", "namespace": "b"},
            ],
        },
    ]
    config = fleet.config(accounts=accounts)
    code, summary = run(capsys, config)
    assert code == 1
    assert summary["targets"] == 63, (summary, run.stderr)
    assert summary["api_calls"] == requests_served(fleet)  # discovery and AssumeRole included
    assert sorted(error.split(":")[0] for error in summary["errors"]) == ["f-bad/a", "f-bad/b"]
    assert all("NoPermission" in error and BAD_ROLE in error for error in summary["errors"])
    assert fleet.sts.issued == [GOOD_ROLE]  # one AssumeRole for the good account, cached
    assert fleet.sts.refused == [BAD_ROLE]  # tried once for its two targets
    for secret in (OWN.access_key_secret, issued.access_key_secret, issued.security_token):
        assert secret not in run.stderr and secret not in json.dumps(summary)

    code, listed = targets_of(capsys, config)
    other = [item for item in listed if item["target"] == "f-other/prod"]
    assert other and other[0]["account"] == GOOD_ROLE and other[0]["region"] == "cn-shanghai"
    run(capsys, config)
    assert fleet.sts.issued.count(GOOD_ROLE) == 1  # reused until shortly before expiry


def test_assumed_credentials_are_renewed_shortly_before_they_expire() -> None:
    clock = [datetime.now(timezone.utc)]
    sessions = sts.RoleSessions(clock=lambda: clock[0])
    with StsServer(
        **{"access_key_id": OWN.access_key_id, "access_key_secret": OWN.access_key_secret}
    ) as server:
        issued = server.add_role(GOOD_ROLE)

        def assume() -> Credentials:
            return sessions.credentials(OWN, GOOD_ROLE, "flink-alerts", server.url, 5.0)

        assert assume() == issued
        clock[0] += timedelta(seconds=sts.DURATION_S) - sts.RENEW_BEFORE - timedelta(seconds=5)
        assert assume() == issued and server.issued == [GOOD_ROLE]
        clock[0] += timedelta(seconds=10)  # within RENEW_BEFORE of the expiry
        assert assume() == issued and server.issued == [GOOD_ROLE, GOOD_ROLE]


def test_events_of_a_discovered_target_come_from_its_region(fleet: Fleet, capsys) -> None:
    beijing = workspace_id("cn-beijing", 3)
    when = datetime.now(timezone.utc)
    fleet.flink["cn-beijing"].add_events([failure(beijing, "ns-2", "beijing-failure", when)])
    code = main(["events", "--config", str(fleet.config()), "--target", f"{beijing}/ns-2"])
    out = capsys.readouterr().out
    assert code == 0
    assert [json.loads(line)["eventId"] for line in out.splitlines()] == ["beijing-failure"]


def test_check_counts_configured_targets_and_discovery_regions(fleet: Fleet, capsys) -> None:
    accounts = [{"role_arn": GOOD_ROLE, "targets": [{"workspace": "w", "namespace": "n"}]}]
    assert main(["check", "--config", str(fleet.config(accounts=accounts))]) == 0
    assert (
        capsys.readouterr().out.strip()
        == "ok: 1 targets, discovery in 3 region(s) of 1 account(s), 1 receivers, 4 rules, 0 routes, 0 silences"
    )
    assert fleet.console.request_count() == 0  # check calls nothing
