"""Client of the Flink OpenAPI calls the bridge needs: GetEvents pages and ListDeployments.

It signs, retries (honouring Retry-After) and turns failures into typed errors; which pages to
read, and which events are new, is decided in ingest.py.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from ..credentials import Credentials
from ..errors import ApiError, MalformedResponseError, error_field, server_text
from ..events import EventsPage, FlinkEvent, Target, parse_event
from . import signer
from .jobs import JobStatus, parse_job

log = logging.getLogger(__name__)

VERSION = "2022-07-18"
MAX_PAGE_SIZE = 100
USER_AGENT = "flink-alerts/0.1"
_BACKOFF_CAP_S = 20.0
_MAX_DEPLOYMENT_PAGES = 100
_RETRYABLE_EXCEPTIONS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


class FlinkClient:
    """One client per run: it caches deployment names and counts the HTTP requests it sends."""

    def __init__(
        self,
        endpoint: str,
        credentials: Credentials,
        *,
        timeout_s: float = 10,
        max_attempts: int = 5,
        deadline: float | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = _BACKOFF_CAP_S,
    ) -> None:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        self._base = f"{parts.scheme}://{parts.netloc}"
        self._host = parts.netloc
        self._credentials = credentials
        self.timeout_s = timeout_s
        self.max_attempts = max(1, max_attempts)
        self.deadline = deadline
        self._session = session or new_session()
        # What requests would look up in the environment for every request (proxies, NO_PROXY,
        # the CA bundle): once per client, that is once per run, as every request goes to one host.
        self._environment = self._session.merge_environment_settings(
            f"{self._base}/", {}, None, None, None
        )
        self._sleep = sleep
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self._calls = 0
        self._calls_lock = threading.Lock()
        self._names: dict[tuple[str, str], dict[str, str]] = {}
        self._name_locks: dict[tuple[str, str], threading.Lock] = {}
        self._names_lock = threading.Lock()

    @property
    def api_calls(self) -> int:
        with self._calls_lock:
            return self._calls

    # -- GetEvents ---------------------------------------------------------------------------

    def get_events_page(
        self, target: Target, page_index: int, page_size: int, deployment_id: str | None = None
    ) -> EventsPage:
        """One page. Events that cannot be parsed become UNREADABLE_EVENT stand-ins, so one bad
        event never blocks the events around it."""
        _check_page_size(page_size)
        query: dict[str, Any] = {"pageIndex": page_index, "pageSize": page_size}
        if deployment_id:
            query["deploymentId"] = deployment_id
        body, server_time = self._call("GetEvents", target, "events", query)
        data = _data_list(body, "GetEvents")
        read_at = server_time or datetime.now(timezone.utc)
        events = [parse_event(raw, target, read_at) for raw in data]
        total = _trusted_total(body, (page_index - 1) * page_size + len(data))
        log.debug(
            "GetEvents %s page %d: %d events, totalSize %s",
            target.name,
            page_index,
            len(data),
            total,
        )
        return EventsPage(events, page_index, total, server_time, len(data))

    def iter_events(
        self, target: Target, *, limit: int, deployment_id: str | None = None
    ) -> list[FlinkEvent]:
        """The newest `limit` events, newest first."""
        from ..ingest import newest

        page_size = min(MAX_PAGE_SIZE, max(1, limit))
        collected: list[FlinkEvent] = []
        for dep in (deployment_id,) if deployment_id else _deployments(target):

            def fetch(index: int, dep: str | None = dep) -> EventsPage:
                return self.get_events_page(target, index, page_size, dep)

            collected.extend(newest(fetch, page_size, limit))
        collected.sort(key=lambda e: (e.created_at, e.event_id), reverse=True)
        return collected[:limit]

    # -- ListDeployments ---------------------------------------------------------------------

    def list_deployments(self, target: Target) -> dict[str, str]:
        """deploymentId -> name of the namespace; listed once per client (thread-safe)."""
        key = (target.workspace, target.namespace)
        with self._names_lock:
            lock = self._name_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._names:
                self._names[key] = self._list_deployments(target)
            return dict(self._names[key])

    def _list_deployments(self, target: Target) -> dict[str, str]:
        names: dict[str, str] = {}
        for page_index in range(1, _MAX_DEPLOYMENT_PAGES + 1):
            query = {"pageIndex": page_index, "pageSize": MAX_PAGE_SIZE}
            body, _ = self._call("ListDeployments", target, "deployments", query)
            data = _data_list(body, "ListDeployments")
            for item in data:
                if not isinstance(item, dict) or not item.get("deploymentId"):
                    raise MalformedResponseError("ListDeployments: an item has no deploymentId")
                names[str(item["deploymentId"])] = str(item.get("name") or "")
            if not data or page_index * MAX_PAGE_SIZE >= _total_size(body, "ListDeployments"):
                break
        log.debug("ListDeployments %s: %d deployments", target.name, len(names))
        return names

    # -- HTTP, signing, retries --------------------------------------------------------------

    def _call(
        self, action: str, target: Target, tail: str, query: dict[str, Any]
    ) -> tuple[dict, datetime | None]:
        """The response body and the server's Date (the API's notion of now)."""
        path = f"/api/v2/namespaces/{signer.encode_segment(target.namespace)}/{tail}"
        params = {key: str(value) for key, value in query.items()}
        last_error: ApiError | None = None
        for attempt in range(self.max_attempts):
            timeout = self._request_timeout(action, last_error)
            try:
                return self._send(action, target.workspace, path, params, timeout)
            except ApiError as exc:
                if not exc.retryable or attempt + 1 >= self.max_attempts:
                    raise
                last_error = exc
            delay = random.uniform(0, min(self.backoff_cap_s, self.backoff_base_s * 2**attempt))
            delay = max(delay, last_error.retry_after or 0.0)  # the server knows best
            if self.deadline is not None and time.monotonic() + delay >= self.deadline:
                raise last_error
            log.warning(
                "%s %s: %s; retry %d/%d in %.2fs",
                action,
                target.name,
                last_error,
                attempt + 2,
                self.max_attempts,
                delay,
            )
            self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _request_timeout(self, action: str, last_error: ApiError | None) -> float:
        if self.deadline is None:
            return self.timeout_s
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise last_error or ApiError(f"{action}: no time left before the run's deadline")
        return min(self.timeout_s, remaining)

    def _send(
        self, action: str, workspace: str, path: str, query: dict[str, str], timeout: float
    ) -> tuple[dict, datetime | None]:
        extra = {"workspace": workspace, "accept": "application/json", "user-agent": USER_AGENT}
        headers = signer.sign_request(
            "GET",
            self._host,
            path,
            query,
            extra,
            b"",
            self._credentials,
            action=action,
            version=VERSION,
            date=signer.acs_date(),
            nonce=signer.new_nonce(),
        )
        url = f"{self._base}{path}?{urlencode(query, quote_via=quote, safe='~')}"
        with self._calls_lock:
            self._calls += 1
        try:
            response = self._session.send(
                self._prepare(url, headers),
                timeout=timeout,
                allow_redirects=False,
                **self._environment,
            )
        except requests.Timeout:
            raise ApiError(f"{action}: no answer within {timeout:.1f}s", retryable=True) from None
        except _RETRYABLE_EXCEPTIONS as exc:
            reason = type(exc).__name__
            raise ApiError(f"{action}: connection failed ({reason})", retryable=True) from None
        except requests.RequestException as exc:
            raise ApiError(f"{action}: request failed ({type(exc).__name__})") from None
        return self._decode(action, response), _http_date(response.headers.get("Date"))

    def _prepare(self, url: str, headers: dict[str, str]) -> requests.PreparedRequest:
        """What `session.get` sends (the session's headers and cookies, then ours), without the
        environment look-ups it would repeat for every request (see `self._environment`)."""
        merged = CaseInsensitiveDict(self._session.headers)
        merged.update(headers)
        request = requests.PreparedRequest()
        request.prepare(method="GET", url=url, headers=merged, cookies=self._session.cookies)
        return request

    def _decode(self, action: str, response: requests.Response) -> dict:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if status >= 400 or (isinstance(body, dict) and body.get("success") is False):
            raise self._api_error(action, status, body, response.headers.get("Retry-After"))
        if not isinstance(body, dict):
            raise MalformedResponseError(
                f"{action}: the response is not a JSON object", http_status=status
            )
        return body

    def _api_error(
        self, action: str, status: int, body: Any, retry_after: str | None = None
    ) -> ApiError:
        fields = body if isinstance(body, dict) else {}
        code = error_field(fields, "Code", "code", "errorCode")
        message = error_field(fields, "Message", "message", "errorMessage")
        if not message:
            message = f"HTTP {status}" + ("" if fields else " with a non-JSON body")
        retryable = code.startswith("Throttling") or status == 429 or status >= 500
        return ApiError(
            f"{action} failed: {server_text(message)}",
            code=code,
            request_id=error_field(fields, "RequestId", "requestId"),
            http_status=status,
            retryable=retryable,
            hint=_hint(action, code, status),
            retry_after=_seconds(retry_after) if retryable else None,
        )

    # -- ListJobs (status and failure cause of one deployment) -------------------------------

    def list_jobs(self, target: Target, deployment_id: str) -> list[JobStatus]:
        """The deployment's jobs (one page: the newest are what matters)."""
        query = {"deploymentId": deployment_id, "pageIndex": 1, "pageSize": MAX_PAGE_SIZE}
        body, _ = self._call("ListJobs", target, "jobs", query)
        return [parse_job(item) for item in _data_list(body, "ListJobs")]


def new_session() -> requests.Session:
    session = requests.Session()
    # Targets are fetched concurrently; the default pool (10) would drop connections.
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=64)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _deployments(target: Target) -> tuple[str | None, ...]:
    return tuple(target.deployment_ids) or (None,)


def _check_page_size(page_size: int) -> None:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}, not {page_size}")


def _trusted_total(body: dict, at_least: int) -> int | None:
    """totalSize, unless it is missing, not a count, or smaller than the data shows."""
    value = body.get("totalSize")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < at_least:
        return None
    return value


def _total_size(body: dict, action: str) -> int:
    value = _trusted_total(body, 0)
    if value is None:
        raise MalformedResponseError(f"{action}: totalSize is {body.get('totalSize')!r}")
    return value


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _seconds(value: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is not used by these APIs)."""
    try:
        return min(max(float(value or ""), 0.0), 300.0)
    except ValueError:
        return None


def _data_list(body: dict, action: str) -> list:
    data = body.get("data")
    if not isinstance(data, list):
        found = "missing" if data is None else type(data).__name__
        raise MalformedResponseError(f"{action}: `data` is {found}, expected a list")
    return data


def _hint(action: str, code: str, status: int) -> str:
    lowered = code.lower()
    if lowered.startswith("throttling") or status == 429:
        return "the API is throttling this account: poll less often or lower concurrency"
    if any(word in lowered for word in ("signature", "accesskey", "securitytoken")):
        return "check the AccessKey id/secret (and STS token) the bridge uses"
    if "timestamp" in lowered:
        return "check the clock: x-acs-date must be within 15 minutes of the server's time"
    if status == 403 or any(word in lowered for word in ("forbidden", "permission", "noauth")):
        return f"grant the RAM action stream:{action} on resource *"
    if status == 404 or any(word in lowered for word in ("namespace", "workspace", "notfound")):
        return "check workspace/namespace in targets"
    return ""
