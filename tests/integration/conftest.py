"""Fixtures of the end-to-end runs: a receiver and the cloud credentials of the local server."""

from __future__ import annotations

import os

import pytest

from tests.servers.flink_server import FlinkServer
from tests.servers.receiver import ReceiverServer


@pytest.fixture
def receiver():
    with ReceiverServer() as server:
        yield server


@pytest.fixture
def cloud_env(monkeypatch, flink_server: FlinkServer) -> dict[str, str]:
    creds = flink_server.credentials
    env = {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": creds.access_key_id,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": creds.access_key_secret,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **env}
