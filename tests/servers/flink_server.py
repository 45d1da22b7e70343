"""A local stand-in for the Flink OpenAPI (ververica 2022-07-18): GetEvents and ListDeployments.

It checks what the real gateway checks (V3 signature, clock skew, STS token, nonce reuse,
RAM permission, the `workspace` header), serves offset pages from an event history kept in
either order with any createdAt format, and injects faults from a queue.

    with FlinkServer(order="asc", created_at_format="iso") as server:
        server.generate(250, deployment_ids=("dep-a",))
        server.inject("throttle", times=2)
        client = FlinkClient(server.url, server.credentials)
        ...
        assert server.request_count("GetEvents") == 3

Signature verification reuses the canonicalisation of `flink_alerts.flink.signer`; that is a
real check only because tests/integration/test_signer_sdk.py proves it equal to the SDK's.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from flink_alerts.credentials import Credentials
from flink_alerts.flink import signer

VERSION = "2022-07-18"
FORMATS = ("ms", "ms_str", "s", "iso", "iso_offset")
FAULTS = (
    "throttle",  # 400 (or status=429) gateway error, Code Throttling.User
    "error500",  # 500 (or status=5xx) gateway JSON error, Code InternalError
    "bad_gateway",  # 502 with an HTML body
    "slow",  # sleep delay_s, then answer normally
    "disconnect",  # close the connection without answering
    "malformed",  # 200 with a body that is not JSON
    "no_data",  # 200 envelope without `data`
    "wrong_types",  # 200 envelope whose `data` is an object and totalSize a word
    "bad_created_at",  # 200 page whose first event has createdAt "yesterday"
    "business_error",  # 200 with success false, errorCode/errorMessage
    "forbidden",  # 403 Forbidden.RAM
    "raw",  # status (200) with `body` as JSON, \u-escaped (lone surrogates survive): fuzzing
)
_REQUIRED_SIGNED = {
    "host",
    "x-acs-action",
    "x-acs-version",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-content-sha256",
}
_STATES = [
    ("CREATED", "STARTING"),
    ("STARTING", "RUNNING"),
    ("RUNNING", "CANCELLING"),
    ("CANCELLING", "CANCELLED"),
    ("CANCELLED", "STARTING"),
]
_FAILURES = [
    (
        "STATE_TRANSITION_IS_COMPLETED",
        "The state transition of deployment {name} from RUNNING to FAILED is completed. "
        "Job failed: java.lang.OutOfMemoryError: Java heap space",
    ),
    (
        "JOB_FAILED",
        "Job failed: java.lang.OutOfMemoryError: GC overhead limit exceeded\n"
        "\tat org.apache.flink.runtime.taskmanager.Task.run(Task.java:568)",
    ),
    (
        "JOB_RESTARTING",
        "Job is restarting: org.apache.flink.runtime.checkpoint.CheckpointException: "
        "Checkpoint expired before completing.",
    ),
]


@dataclass
class Fault:
    kind: str
    status: int = 0
    delay_s: float = 0.0
    action: str | None = None  # None: the next request of any action
    code: str = ""
    message: str = ""
    body: Any = None
    retry_after: str = ""  # a Retry-After header on a throttling answer


@dataclass
class Received:
    action: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class GatewayError(Exception):
    def __init__(self, status: int, code: str, message: str, retry_after: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.retry_after = retry_after


def ms_of(moment: datetime) -> int:
    return int(round(moment.timestamp() * 1000))


class FlinkServer:
    """Threaded HTTP server on 127.0.0.1 (ephemeral port). Thread-safe; every knob may be
    changed while it runs."""

    version = VERSION

    def __init__(
        self,
        *,
        access_key_id: str = "LTAI-test-key-id",
        access_key_secret: str = "test-secret-3f9a1c",
        security_token: str | None = None,
        workspace: str = "ws-test",
        namespace: str = "ns-test",
        order: str = "desc",
        created_at_format: str = "ms",
        max_skew_s: float = 900.0,
        lowercase_errors: bool = False,
    ) -> None:
        if order not in ("desc", "asc") or created_at_format not in FORMATS:
            raise ValueError(f"order {order!r} / created_at_format {created_at_format!r}")
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.security_token = security_token
        self.workspace = workspace
        self.namespace = namespace
        self.workspaces = {workspace}
        self.namespaces = {namespace}
        self.order = order
        self.created_at_format = created_at_format
        self.max_skew_s = max_skew_s
        self.clock_offset_s = 0.0  # the server's clock runs this much ahead of ours
        self.total_size_offset = 0  # a totalSize that disagrees with the data
        self.lowercase_errors = lowercase_errors
        # Every answer waits this long first, like a remote API (benchmarks of many targets).
        self.latency_s = 0.0
        self.denied_actions: set[str] = set()
        # Called as on_request(action, query) before a page is computed, e.g. to insert events
        # between two page requests of one fetch.
        self.on_request: Callable[[str, dict[str, str]], None] | None = None
        self.received: list[Received] = []
        self._events: list[dict[str, Any]] = []
        self._deployments: list[dict[str, Any]] = []
        self._jobs: list[dict[str, Any]] = []
        self._faults: deque[Fault] = deque()
        self._counts: Counter[str] = Counter()
        self._nonces: set[str] = set()
        self._accepted: dict[str, Credentials] = {}
        # Sorted GetEvents listings, kept until the events change: paging through a 100,000-event
        # history would otherwise sort it again for every page.
        self._listings: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FlinkServer:
        handler = type("Handler", (_Handler,), {"app": self})
        self._httpd = _HTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FlinkServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def credentials(self) -> Credentials:
        return Credentials(self.access_key_id, self.access_key_secret, self.security_token)

    # -- data ------------------------------------------------------------------------------

    def add_events(self, events: Iterable[dict[str, Any]]) -> None:
        """Events as the API spells them; createdAt as epoch ms (int) or an aware datetime."""
        with self._lock:
            for event in events:
                item = {"workspace": self.workspace, "namespace": self.namespace, **event}
                if isinstance(item["createdAt"], datetime):
                    item["createdAt"] = ms_of(item["createdAt"])
                self._events.append(item)
            self._listings.clear()

    def generate(
        self,
        count: int,
        *,
        deployment_ids: Iterable[str] = ("dep-alpha", "dep-beta", "dep-gamma"),
        start: datetime | None = None,
        step_s: float = 1.0,
        failure_every: int = 7,
    ) -> list[dict[str, Any]]:
        """Append `count` realistic events, `step_s` apart, after the newest one (or ending now).

        Every `failure_every`-th event is a failure (OOM, checkpoint expiry, RUNNING -> FAILED).
        """
        ids = list(deployment_ids)
        step_ms = int(step_s * 1000)
        with self._lock:
            newest = self.newest_ms()
            if start is not None:
                first = ms_of(start)
            elif newest is not None:
                first = newest + step_ms
            else:
                first = ms_of(_now()) - step_ms * count
            events = [
                self._make_event(first + i * step_ms, ids[i % len(ids)]) for i in range(count)
            ]
            if failure_every > 0:
                for number, event in enumerate(events[failure_every - 1 :: failure_every]):
                    self._make_failure(event, _FAILURES[number % len(_FAILURES)])
            self.add_events(events)
        return events

    def _make_event(self, created_ms: int, deployment_id: str) -> dict[str, Any]:
        number = next(self._ids)
        before, after = _STATES[number % len(_STATES)]
        return {
            "eventId": f"{uuid.UUID(int=number)}",
            "eventName": "STATE_TRANSITION_IS_COMPLETED",
            "createdAt": created_ms,
            "deploymentId": deployment_id,
            "jobId": f"job-{deployment_id}-{number // 10}",
            "message": f"The state transition of deployment {deployment_id} from {before} "
            f"to {after} is completed.",
            "namespace": self.namespace,
            "workspace": self.workspace,
        }

    @staticmethod
    def _make_failure(event: dict[str, Any], failure: tuple[str, str]) -> None:
        name, message = failure
        event["eventName"] = name
        event["message"] = message.format(name=event["deploymentId"])

    def newest_ms(self) -> int | None:
        with self._lock:
            return max((event["createdAt"] for event in self._events), default=None)

    def expire_oldest(self, count: int) -> None:
        """Drop the oldest events, as a retention limit would."""
        with self._lock:
            self._events.sort(key=_sort_key)
            del self._events[:count]
            self._listings.clear()

    @property
    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(event) for event in self._events]

    def add_deployment(
        self, deployment_id: str, name: str, labels: dict[str, str] | None = None
    ) -> None:
        with self._lock:
            self._deployments.append(
                {
                    "deploymentId": deployment_id,
                    "name": name,
                    "labels": labels or {},
                    "namespace": self.namespace,
                    "workspace": self.workspace,
                    "jobSummary": {"running": 1, "failed": 0},
                }
            )

    def add_job(
        self,
        deployment_id: str,
        status: str,
        *,
        failure: dict[str, Any] | None = None,
        started_ms: int | None = None,
    ) -> None:
        """A job of the deployment as ListJobs shows it; the newest job is listed first."""
        job_status: dict[str, Any] = {"currentJobStatus": status}
        if failure is not None:
            job_status["failure"] = failure
        with self._lock:
            self._jobs.insert(
                0,
                {
                    "jobId": f"job-{next(self._ids)}",
                    "deploymentId": deployment_id,
                    "namespace": self.namespace,
                    "workspace": self.workspace,
                    "startTime": started_ms or ms_of(_now()),
                    "status": job_status,
                },
            )

    # -- faults and counters ---------------------------------------------------------------

    def inject(self, kind: str, *, times: int = 1, **options: Any) -> None:
        """Queue `times` faults of `kind` (see FAULTS) for the next requests (of `action=`)."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {FAULTS}")
        with self._lock:
            self._faults.extend(Fault(kind, **options) for _ in range(times))

    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def request_count(self, action: str | None = None) -> int:
        with self._lock:
            return sum(self._counts.values()) if action is None else self._counts[action]

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()
            self.received.clear()

    # -- request handling (called from handler threads) ------------------------------------

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> _Reply:
        parts = urlsplit(raw_path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        action, namespace = _route(method, parts.path)
        with self._lock:
            self._counts[action] += 1
            self.received.append(Received(action, method, parts.path, query, dict(headers)))
        if self.latency_s:
            self._stopping.wait(self.latency_s)
        try:
            self._authenticate(method, parts.path, query, headers, body, action)
            self._authorize(action, headers, namespace)
            fault = self._next_fault(action)
            if fault is not None:
                reply = self._apply_fault(fault, action)
                if reply is not None:
                    return reply
            if self.on_request is not None:
                self.on_request(action, query)
            return self._serve(action, namespace, headers["workspace"], query)
        except GatewayError as exc:
            return self._gateway_reply(exc)

    def _authenticate(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        action: str,
    ) -> None:
        auth = signer.parse_authorization(headers.get("authorization", ""))
        if auth is None:
            raise GatewayError(400, "IncompleteSignature", "The Authorization header is invalid.")
        caller = self.known_credentials(auth["Credential"])
        self._check_token(headers, caller.security_token)
        signed = auth["SignedHeaders"].split(";")
        token_header = {"x-acs-security-token"} if caller.security_token else set()
        missing = (_REQUIRED_SIGNED | token_header) - set(signed)
        if missing or any(name not in headers for name in signed):
            raise GatewayError(400, "IncompleteSignature", f"Unsigned headers: {sorted(missing)}")
        self._check_date(headers["x-acs-date"])
        self._check_payload(headers["x-acs-content-sha256"], body)
        canonical_path = "/".join(signer.encode_segment(unquote(s)) for s in path.split("/"))
        canonical = signer.canonical_request(
            method, canonical_path, query, {name: headers[name] for name in signed}, _sha(body)
        )
        expected = signer.signature(caller.access_key_secret, canonical)
        if not hmac.compare_digest(expected, auth["Signature"]):
            raise GatewayError(
                400, "SignatureDoesNotMatch", "Specified signature does not match our calculation."
            )
        self._check_nonce(headers["x-acs-signature-nonce"])
        self._check_action(action, headers)

    def accept(self, credentials: Credentials) -> None:
        """Accept these credentials too (e.g. those an STS server issues for another account)."""
        with self._lock:
            self._accepted[credentials.access_key_id] = credentials

    def known_credentials(self, access_key_id: str) -> Credentials:
        with self._lock:
            accepted = {self.access_key_id: self.credentials, **self._accepted}
        if access_key_id not in accepted:
            raise GatewayError(
                404, "InvalidAccessKeyId.NotFound", "Specified access key is not found."
            )
        return accepted[access_key_id]

    def _check_token(self, headers: dict[str, str], expected: str | None) -> None:
        token = headers.get("x-acs-security-token")
        if expected and not token:
            raise GatewayError(400, "MissingSecurityToken", "SecurityToken is mandatory.")
        if expected and not hmac.compare_digest(token or "", expected):
            raise GatewayError(
                400, "InvalidSecurityToken.Mismatch", "Specified SecurityToken is invalid."
            )

    def _check_date(self, value: str) -> None:
        try:
            sent = datetime.strptime(value, signer.DATE_FORMAT).replace(tzinfo=timezone.utc)
        except ValueError:
            raise GatewayError(400, "InvalidTimeStamp.Format", "x-acs-date is malformed.") from None
        skew = abs((_now() + timedelta(seconds=self.clock_offset_s) - sent).total_seconds())
        if skew > self.max_skew_s:
            raise GatewayError(
                400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired."
            )

    def _check_payload(self, declared: str, body: bytes) -> None:
        if declared != _sha(body):
            raise GatewayError(
                400, "ContentSHA256NotMatch", "x-acs-content-sha256 does not match the body."
            )

    def _check_nonce(self, nonce: str) -> None:
        with self._lock:
            if nonce in self._nonces:
                raise GatewayError(
                    400, "SignatureNonceUsed", "Specified signature nonce was used already."
                )
            self._nonces.add(nonce)

    def _check_action(self, action: str, headers: dict[str, str]) -> None:
        if headers.get("x-acs-version") != self.version:
            raise GatewayError(400, "InvalidVersion", "Specified API version is not valid.")
        if action == "Unknown" or headers.get("x-acs-action") != action:
            raise GatewayError(404, "InvalidAction.NotFound", "Specified api is not found.")

    def _authorize(self, action: str, headers: dict[str, str], namespace: str) -> None:
        if action in self.denied_actions:
            raise _forbidden(action)
        workspace = headers.get("workspace", "")
        if not workspace:
            raise GatewayError(
                400, "MissingParameter.Workspace", "The workspace header is required."
            )
        if workspace not in self.workspaces or namespace not in self.namespaces:
            raise GatewayError(
                404,
                "NotFound.Namespace",
                f"namespace {namespace} not found in workspace {workspace}",
            )

    def _next_fault(self, action: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.action in (None, action):
                    self._faults.remove(fault)
                    return fault
        return None

    def _apply_fault(self, fault: Fault, action: str) -> _Reply | None:
        kind = fault.kind
        if kind == "slow":
            self._stopping.wait(fault.delay_s or 2.0)
            return None
        if kind == "throttle":
            raise GatewayError(
                fault.status or 400,
                fault.code or "Throttling.User",
                "Request was denied due to user flow control.",
                fault.retry_after,
            )
        if kind == "error500":
            raise GatewayError(
                fault.status or 500, fault.code or "InternalError", "Internal error."
            )
        if kind == "forbidden":
            raise _forbidden(action)
        if kind == "bad_gateway":
            return _Reply(
                fault.status or 502, b"<html><h1>502 Bad Gateway</h1></html>", "text/html"
            )
        if kind == "disconnect":
            return _Reply(0, b"")
        if kind == "raw":
            return _Reply(fault.status or 200, json.dumps(fault.body).encode())
        if kind == "malformed":
            return _Reply(200, b'{"requestId": "x", "success": true, "data": [')
        return _Reply(200, _json(self._broken_envelope(fault)))

    def _broken_envelope(self, fault: Fault) -> dict[str, Any]:
        envelope: dict[str, Any] = {"requestId": _request_id(), "success": True, "httpCode": 200}
        if fault.kind == "business_error":
            envelope.update(
                success=False,
                errorCode=fault.code or "InvalidParameter",
                errorMessage=fault.message or "The request parameter is invalid.",
            )
        elif fault.kind == "wrong_types":
            envelope.update(data={"events": []}, totalSize="many", pageIndex=1, pageSize=10)
        elif fault.kind == "bad_created_at":
            with self._lock:
                event = self._render(self._sorted(self._events)[0]) if self._events else {}
            event.update(eventId=event.get("eventId", "ev-bad"), createdAt="yesterday")
            envelope.update(data=[event], totalSize=1, pageIndex=1, pageSize=10)
        else:  # no_data
            envelope.update(totalSize=0, pageIndex=1, pageSize=10)
        return envelope

    def _serve(self, action: str, namespace: str, workspace: str, query: dict[str, str]) -> _Reply:
        try:
            page_index = int(query.get("pageIndex", "1"))
            page_size = int(query.get("pageSize", "10"))
        except ValueError:
            page_index = page_size = 0
        if page_index < 1 or not 1 <= page_size <= 100:
            return _Reply(200, _json(_business_error("InvalidParameter", "pageIndex/pageSize")))
        with self._lock:
            items = self._listing(action, namespace, workspace, query)
        start = (page_index - 1) * page_size
        page = items[start : start + page_size]
        envelope = {
            "requestId": _request_id(),
            "success": True,
            "httpCode": 200,
            "pageIndex": page_index,
            "pageSize": page_size,
            "totalSize": max(0, len(items) + self.total_size_offset),
            "data": [self._render(e) for e in page] if action == "GetEvents" else page,
        }
        return _Reply(200, _json(envelope))

    def _listing(
        self, action: str, namespace: str, workspace: str, query: dict[str, str]
    ) -> list[dict[str, Any]]:
        if action == "GetEvents":
            filters = (query.get("deploymentId"), query.get("deploymentName"))
            key = (workspace, namespace, *filters, self.order)
            if key not in self._listings:
                self._listings[key] = self._sorted(
                    [e for e in self._events if _matches(e, workspace, namespace, query)]
                )
            return self._listings[key]
        listed = self._deployments if action == "ListDeployments" else self._jobs
        return [
            {k: v for k, v in d.items() if k not in ("namespace", "workspace")}
            for d in listed
            if d["workspace"] == workspace
            and d["namespace"] == namespace
            and query.get("deploymentId", d["deploymentId"]) == d["deploymentId"]
        ]

    def _sorted(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(events, key=_sort_key, reverse=self.order == "desc")

    def _render(self, event: dict[str, Any]) -> dict[str, Any]:
        """The event as the API spells it; for poison events, `_raw` fields replace what is
        rendered and `_drop` names fields left out."""
        rendered = self._render_time({k: v for k, v in event.items() if not k.startswith("_")})
        rendered.update(event.get("_raw", {}))
        return {k: v for k, v in rendered.items() if k not in event.get("_drop", ())}

    def _render_time(self, event: dict[str, Any]) -> dict[str, Any]:
        ms = event["createdAt"]
        moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
        rendered: Any = {
            "ms": ms,
            "ms_str": str(ms),
            "s": ms // 1000,
            "iso": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "iso_offset": moment.astimezone(timezone(timedelta(hours=8))).isoformat(),
        }[self.created_at_format]
        return {**event, "createdAt": rendered}

    def _gateway_reply(self, exc: GatewayError) -> _Reply:
        body = {
            "RequestId": _request_id(),
            "HostId": "ververica.local",
            "Code": exc.code,
            "Message": exc.message,
            "Recommend": f"https://api.aliyun.com/troubleshoot?q={exc.code}",
        }
        if self.lowercase_errors:
            body = {key[0].lower() + key[1:]: value for key, value in body.items()}
        headers = {"Retry-After": exc.retry_after} if exc.retry_after else {}
        return _Reply(exc.status, _json(body), headers=headers)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out and hang up are part of the tests


class _Handler(BaseHTTPRequestHandler):
    app: FlinkServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.app.handle(self.command, self.path, headers, body)
        if reply.status == 0:
            self.close_connection = True
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, *args: Any) -> None:
        pass


def _route(method: str, path: str) -> tuple[str, str]:
    segments = path.split("/")
    # ["", "api", "v2", "namespaces", NS, "events"]
    if method == "GET" and len(segments) == 6 and segments[1:4] == ["api", "v2", "namespaces"]:
        actions = {"events": "GetEvents", "deployments": "ListDeployments", "jobs": "ListJobs"}
        action = actions.get(segments[5])
        if action:
            return action, unquote(segments[4])
    return "Unknown", ""


def _matches(event: dict[str, Any], workspace: str, namespace: str, query: dict[str, str]) -> bool:
    if event["workspace"] != workspace or event["namespace"] != namespace:
        return False
    wanted = query.get("deploymentId")
    return not wanted or event.get("deploymentId") == wanted


def _sort_key(event: dict[str, Any]) -> tuple[int, str]:
    return event["createdAt"], event["eventId"]


def _forbidden(action: str) -> GatewayError:
    return GatewayError(
        403,
        "Forbidden.RAM",
        f"User not authorized to operate on the specified resource (stream:{action}).",
    )


def _business_error(code: str, message: str) -> dict[str, Any]:
    return {
        "requestId": _request_id(),
        "success": False,
        "httpCode": 200,
        "errorCode": code,
        "errorMessage": message,
    }


def _sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _json(value: Any) -> bytes:
    # ASCII escapes: a lone surrogate in an event (a truncated emoji) goes out as `\\ud83d`.
    return json.dumps(value).encode("utf-8")


def _request_id() -> str:
    return str(uuid.uuid4()).upper()


def _now() -> datetime:
    return datetime.now(timezone.utc)
