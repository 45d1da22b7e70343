"""Fan-out for large fleets: split the targets into shards and invoke the worker function once per
shard, asynchronously, each invocation running only its shard's targets.

Two ways to shard (README, "Fan-out"): one timer trigger per shard, whose payload lists the shard's
targets (`{"targets": ["WS/NS", ...]}`), or one dispatcher timer with payload `{"dispatch": true}`
that calls `dispatch` below. The worker receives a timer-shaped event, so it runs as usual.

Why FC 3.0's own API and not `fc2` (FC 2.0 API, 2016-08-15): FC's "3.0 and 2.0 differences and
compatibility" page says that 3.0 drops services, that functions become top-level, and that
existing 2.0 services and functions keep working and stay callable. It does not say that a
function created natively in 3.0 (by template.yml's ALIYUN::FC3::Function or s.yaml's fc3
component) is reachable through the 2.0 API, which addresses every function as
services/{service}/functions/{function}. So the dispatcher uses FC 3.0's InvokeFunction,
`POST /2023-03-30/functions/{name}/invocations` with `x-fc-invocation-type: Async`, signed with the
same ACS3-HMAC-SHA256 signer as the Flink API; it needs nothing preinstalled.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from .credentials import Credentials
from .errors import ConfigError, FlinkAlertsError
from .flink import signer
from .settings import Settings

log = logging.getLogger("flink_alerts.fanout")

API_VERSION = "2023-03-30"
ACTION = "InvokeFunction"
_RETRYABLE_STATUS = {429, 500, 502, 503, 504}
_ATTEMPTS = 3


class DispatchError(FlinkAlertsError):
    """An invocation of the worker failed; one line, no secrets."""


def split_into_shards(names: list[str], shards: int) -> list[list[str]]:
    """Every name in exactly one shard, shard sizes differing by at most one; no empty shard."""
    if shards < 1:
        raise ValueError("shards must be >= 1")
    unique = list(dict.fromkeys(names))
    return [unique[index::shards] for index in range(min(shards, len(unique)))]


def worker_event(targets: list[str]) -> bytes:
    """The event a shard's worker gets: shaped like a timer event, so the handler needs no new path."""
    payload = json.dumps({"targets": targets}, ensure_ascii=False)
    return json.dumps({"triggerName": "fanout", "payload": payload}, ensure_ascii=False).encode()


def default_endpoint(account_id: str | None, region: str) -> str:
    if not account_id:
        raise ConfigError(
            "fanout.endpoint", "set it, or run in FC (FC_ACCOUNT_ID names the account)"
        )
    return f"https://{account_id}.{region}.fc.aliyuncs.com"


class FunctionInvoker:
    """FC 3.0 InvokeFunction, asynchronous, ACS3-signed."""

    def __init__(
        self,
        endpoint: str,
        credentials: Credentials,
        *,
        timeout_s: float = 10.0,
        backoff_s: float = 0.5,
        session: requests.Session | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.host = urlsplit(self.endpoint).netloc
        self.credentials = credentials
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self._session = session or requests.Session()

    def invoke_async(self, function: str, event: bytes) -> str:
        """Queue one invocation; returns FC's request id. Retries throttling, 5xx and network
        failures a few times (a repeated shard is harmless: its targets' leases serialise runs)."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return self._invoke_once(function, event)
            except _Retryable as exc:
                if attempt == _ATTEMPTS:
                    raise DispatchError(f"invoking {function} failed: {exc}") from None
                time.sleep(self.backoff_s * attempt)
        raise AssertionError("unreachable")

    def _invoke_once(self, function: str, event: bytes) -> str:
        path = f"/{API_VERSION}/functions/{quote(function, safe='')}/invocations"
        headers = signer.sign_request(
            "POST",
            self.host,
            path,
            {},
            {"content-type": "application/octet-stream", "x-fc-invocation-type": "Async"},
            event,
            self.credentials,
            action=ACTION,
            version=API_VERSION,
            date=signer.acs_date(),
            nonce=signer.new_nonce(),
        )
        try:
            response = self._session.post(
                self.endpoint + path, data=event, headers=headers, timeout=self.timeout_s
            )
        except requests.RequestException as exc:
            raise _Retryable(f"cannot reach {self.endpoint} ({type(exc).__name__})") from None
        if response.status_code in _RETRYABLE_STATUS:
            raise _Retryable(_answer(response))
        if response.status_code != 202:
            raise DispatchError(f"invoking {function} failed: {_answer(response)}")
        return response.headers.get("x-fc-request-id", "")


class _Retryable(Exception):
    pass


def _answer(response: requests.Response) -> str:
    """`HTTP 404 FunctionNotFound: message (requestId …)`, from FC's JSON error body if any."""
    try:
        body: Any = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    code = body.get("Code") or body.get("code") or ""
    message = str(body.get("Message") or body.get("message") or "")[:300]
    request_id = body.get("RequestId") or response.headers.get("x-fc-request-id", "")
    text = f"HTTP {response.status_code}" + (f" {code}" if code else "")
    text += f": {message}" if message else ""
    return text + (f" (requestId {request_id})" if request_id else "")


@dataclass
class DispatchSummary:
    shards: int = 0
    targets: int = 0
    invoked: int = 0
    request_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dispatch": True,
            "shards": self.shards,
            "targets": self.targets,
            "invoked": self.invoked,
            "errors": self.errors,
        }


def dispatch(
    invoker: FunctionInvoker, function: str, target_names: list[str], shards: int
) -> DispatchSummary:
    """One asynchronous invocation of `function` per shard; a failed shard does not stop the rest."""
    summary = DispatchSummary(targets=len(target_names))
    for index, shard in enumerate(split_into_shards(target_names, shards)):
        summary.shards += 1
        try:
            summary.request_ids.append(invoker.invoke_async(function, worker_event(shard)))
            summary.invoked += 1
        except DispatchError as exc:
            summary.errors.append(f"shard {index + 1} ({len(shard)} targets): {exc}")
            log.error("shard %d not dispatched: %s", index + 1, exc)
    return summary


def dispatch_configured(
    settings: Settings,
    credentials: Callable[[], Credentials],
    environ: Mapping[str, str] = os.environ,
) -> DispatchSummary:
    """The dispatcher run: the fleet's targets (configured and discovered), sharded as `fanout:`
    says. `credentials` is called once the configuration is known to be complete."""
    if settings.fanout is None:
        raise ConfigError("fanout", 'a {"dispatch": true} payload needs fanout.shards configured')
    function = settings.fanout.function or environ.get("FC_FUNCTION_NAME")
    if not function:
        raise ConfigError(
            "fanout.function", "name the worker function (outside FC it has no default)"
        )
    endpoint = settings.fanout.endpoint or default_endpoint(
        environ.get("FC_ACCOUNT_ID"), settings.region
    )
    names, problems = fleet_names(settings, credentials)
    invoker = FunctionInvoker(endpoint, credentials(), timeout_s=settings.timeout_s)
    summary = dispatch(invoker, function, names, settings.fanout.shards)
    summary.errors[:0] = problems
    return summary


def fleet_names(settings: Settings, credentials: Callable[[], Any]) -> tuple[list[str], list[str]]:
    """(target names, discovery problems) of the fleet the workers will resolve too."""
    from .checkpoint import open_store
    from .fleet.resolve import resolve_fleet

    store = open_store(settings.checkpoint, region=settings.region, credentials=credentials)
    fleet = resolve_fleet(settings, store, credentials)
    return [target.name for target in fleet.targets], list(fleet.problems)
