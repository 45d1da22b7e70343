"""Which client for which target: the endpoint of the target's region, the credentials of its
account (the function's own, or an assumed role)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ..credentials import Credentials
from ..errors import FlinkAlertsError
from ..events import Target
from . import sts
from .config import DEFAULT_FLINK_ENDPOINT, endpoint_for
from .discovery import Scope, foasconsole_endpoint
from .foasconsole import VERSION as FOASCONSOLE_VERSION
from .foasconsole import Foasconsole
from .rpc import CallCount, RpcClient
from .sts import RoleSessions


class AccountError(FlinkAlertsError):
    """The role of an account cannot be assumed: an error for that account's targets only."""


class Accounts:
    """Credentials per account ("" = the function's own). A role that cannot be assumed is
    tried once per run; its targets all report the same error."""

    def __init__(
        self, settings: Any, own: Credentials, sessions: RoleSessions | None = None
    ) -> None:
        self.settings = settings
        self.own = own
        self.sessions = sessions or sts.SESSIONS
        self.names = {a.role_arn: a.session_name for a in settings.accounts}
        self._failed: dict[str, AccountError] = {}
        self.calls = CallCount()  # management API calls: foasconsole and STS
        self._lock = threading.Lock()

    def credentials(self, account: str) -> Credentials:
        if not account:
            return self.own
        with self._lock:
            if account in self._failed:
                raise self._failed[account]
            try:
                return self.sessions.credentials(
                    self.own,
                    account,
                    self.names.get(account, "flink-alerts"),
                    self.settings.sts_endpoint,
                    self.settings.timeout_s,
                    self.calls,
                )
            except FlinkAlertsError as exc:
                self._failed[account] = AccountError(f"account {account}: {exc}")
                raise self._failed[account] from None

    def foasconsole(self, scope: Scope) -> Foasconsole:
        rpc = RpcClient(
            foasconsole_endpoint(scope),
            self.credentials(scope.account),
            version=FOASCONSOLE_VERSION,
            ram_code="stream",
            timeout_s=self.settings.timeout_s,
            calls=self.calls,
        )
        return Foasconsole(rpc)


class TargetClients:
    """The event source of a run over many regions and accounts: every per-target call
    (`fetch_new(target, …)`, `list_deployments(target)`, …) goes to the Flink client of the
    target's region and account, built on first use."""

    def __init__(
        self,
        settings: Any,
        accounts: Accounts,
        make_client: Callable[[str, Credentials], Any],
    ) -> None:
        self.settings = settings
        self.accounts = accounts
        self.make_client = make_client
        self._clients: dict[tuple[str, Credentials], Any] = {}
        self._lock = threading.Lock()

    @property
    def api_calls(self) -> int:
        """Flink OpenAPI calls plus discovery (foasconsole) and AssumeRole (STS) calls."""
        flink = sum(client.api_calls for client in list(self._clients.values()))
        return flink + self.accounts.calls.value

    def endpoint(self, target: Target) -> str:
        template = self.settings.endpoint or DEFAULT_FLINK_ENDPOINT
        return endpoint_for(template, target.region or self.settings.region)

    def client_for(self, target: Target) -> Any:
        key = (self.endpoint(target), self.accounts.credentials(target.account))
        with self._lock:
            if key not in self._clients:
                self._clients[key] = self.make_client(*key)
            return self._clients[key]

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)

        def routed(target: Target, *args: Any, **kwargs: Any) -> Any:
            return getattr(self.client_for(target), name)(target, *args, **kwargs)

        return routed
