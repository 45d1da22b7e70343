"""The run against OSS and Tablestore checkpoints (local servers driven by the real SDKs)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.integration.test_run import (
    delivered_ids,
    failure_ids,
    run,
    run_process,
    write_config,
)
from tests.servers.oss_server import OssTestServer
from tests.servers.receiver import ReceiverServer
from tests.servers.tablestore_server import TablestoreTestServer


@pytest.fixture
def receiver():
    with ReceiverServer() as server:
        yield server


@pytest.fixture
def cloud_env(monkeypatch, flink_server):
    creds = flink_server.credentials
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", creds.access_key_id)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", creds.access_key_secret)
    import os

    return dict(os.environ)


@pytest.fixture(params=["oss", "tablestore"])
def checkpoint_url(request, flink_server):
    creds = flink_server.credentials
    if request.param == "oss":
        server = OssTestServer().start()
        bucket = server.create_bucket()
        request.node.store_server = server
        yield f"oss://{bucket}/flink-alerts?endpoint={server.endpoint}"
    else:
        server = TablestoreTestServer(credentials={creds.access_key_id: creds.access_key_secret})
        server.start()
        server.create_table("checkpoints", primary_key=[("target", "STRING")])
        request.node.store_server = server
        yield f"tablestore://{server.instance}/checkpoints?endpoint={server.endpoint}"
    server.stop()


def test_three_runs_deliver_once(
    tmp_path, capsys, flink_server, receiver, cloud_env, checkpoint_url
):
    flink_server.generate(30)
    config = write_config(tmp_path, flink_server, [receiver], checkpoint=checkpoint_url)
    for expected_sent in (1, 0, 0):
        code, summary = run(capsys, config)
        assert code == 0 and summary["sent"] == expected_sent, summary
    assert delivered_ids(receiver) == failure_ids(flink_server)


def test_two_processes_on_the_same_timer_event_deliver_once(
    tmp_path, flink_server, receiver, cloud_env, checkpoint_url
):
    flink_server.generate(70)
    receiver.delay_s = 0.5
    config = write_config(tmp_path, flink_server, [receiver], checkpoint=checkpoint_url)
    runs = [run_process(config, cloud_env) for _ in range(2)]
    outputs = [process.communicate(timeout=60) for process in runs]
    assert all(process.returncode == 0 for process in runs), outputs
    summaries = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert sum(s["sent"] for s in summaries) == 1
    counts = Counter(delivered_ids(receiver))
    assert sorted(counts) == sorted(failure_ids(flink_server)) and set(counts.values()) == {1}


def test_unreachable_store_sends_nothing_then_catches_up(
    tmp_path, capsys, flink_server, receiver, cloud_env
):
    flink_server.generate(14)
    server = OssTestServer().start()
    bucket = server.create_bucket()
    endpoint = server.endpoint
    server.stop()
    url = f"oss://{bucket}/p?endpoint={endpoint}"
    code, summary = run(capsys, write_config(tmp_path, flink_server, [receiver], checkpoint=url))
    assert code == 1 and receiver.attempts == 0
    assert f"oss://{bucket}/p" in summary["errors"][0]
    assert flink_server.credentials.access_key_secret not in run.stderr
    with OssTestServer() as again:
        url = f"oss://{bucket}/p?endpoint={again.endpoint}"
        code, summary = run(
            capsys, write_config(tmp_path, flink_server, [receiver], checkpoint=url)
        )
    assert code == 0 and delivered_ids(receiver) == failure_ids(flink_server)


def test_a_run_with_nothing_new_only_reads_the_store(
    request, tmp_path, capsys, flink_server, receiver, cloud_env, checkpoint_url
):
    flink_server.generate(30)
    config = write_config(tmp_path, flink_server, [receiver], checkpoint=checkpoint_url)
    run(capsys, config)
    server = request.node.store_server
    server.requests.clear()
    code, summary = run(capsys, config)
    assert code == 0 and summary["sent"] == 0
    limit = 2 if checkpoint_url.startswith("oss://") else 1
    assert len(server.requests) <= limit, server.requests
