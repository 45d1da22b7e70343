"""Shared fixtures. Servers bind 127.0.0.1 on an ephemeral port and stop after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from flink_alerts.events import Target
from flink_alerts.flink.client import FlinkClient
from tests.servers.flink_server import FlinkServer

# -- Flink OpenAPI ------------------------------------------------------------------------


@pytest.fixture
def flink_server_factory() -> Iterator[Callable[..., FlinkServer]]:
    """`make(order="asc", created_at_format="iso", security_token="…")` -> a started server."""
    servers: list[FlinkServer] = []

    def make(**options: Any) -> FlinkServer:
        server = FlinkServer(**options).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def flink_server(flink_server_factory: Callable[..., FlinkServer]) -> FlinkServer:
    """A started server with defaults: newest-first, createdAt in epoch ms, no events yet."""
    return flink_server_factory()


@pytest.fixture
def flink_client_factory() -> Callable[..., FlinkClient]:
    """`make(server, **client_options)` -> a FlinkClient for that server with fast retries."""

    def make(server: FlinkServer, **options: Any) -> FlinkClient:
        options = {"timeout_s": 5.0, "backoff_base_s": 0.001, **options}
        return FlinkClient(server.url, server.credentials, **options)

    return make


@pytest.fixture
def flink_client(
    flink_server: FlinkServer, flink_client_factory: Callable[..., FlinkClient]
) -> FlinkClient:
    return flink_client_factory(flink_server)


@pytest.fixture
def flink_target(flink_server: FlinkServer) -> Target:
    return Target(flink_server.workspace, flink_server.namespace)
