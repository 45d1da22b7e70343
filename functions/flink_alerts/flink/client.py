"""Client of the two Flink OpenAPI calls the bridge needs: GetEvents and ListDeployments.

GetEvents has no time filter and no cursor, only offset pages, and the order of `data` is
undocumented; `fetch_new` learns the order from the data and reads only the pages that can
hold events at or after the caller's floor.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import requests
from requests.adapters import HTTPAdapter

from ..credentials import Credentials
from ..errors import ApiError, EventParseError, MalformedResponseError
from ..events import FlinkEvent, Target
from ..scrub import scrub
from . import signer

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


@dataclass(frozen=True)
class EventsPage:
    events: list[FlinkEvent]
    total_size: int
    page_index: int
    page_size: int


@dataclass(frozen=True)
class FetchResult:
    """Events at or after the floor, oldest first, each once.

    `complete` is False when max_pages stopped the walk before it reached events older than the
    floor; `unseen_estimate` then counts events known (from totalSize) but not read.
    `requests` counts GetEvents pages asked for (retries not included; see api_calls).
    """

    events: list[FlinkEvent]
    order: str | None
    complete: bool
    unseen_estimate: int
    total_size: int
    requests: int


@dataclass
class _Walk:
    pages: list[EventsPage]
    order: str | None
    complete: bool = True
    unseen: int = 0
    requests: int = 0


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
        self._session = session or _new_session()
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
        _check_page_size(page_size)
        query: dict[str, Any] = {"pageIndex": page_index, "pageSize": page_size}
        if deployment_id:
            query["deploymentId"] = deployment_id
        body = self._call("GetEvents", target, "events", query)
        data = _data_list(body, "GetEvents")
        try:
            events = [
                FlinkEvent.from_api(raw, workspace=target.workspace, namespace=target.namespace)
                for raw in data
            ]
        except EventParseError as exc:
            raise EventParseError(f"GetEvents {target.name} page {page_index}: {exc}") from None
        total = max(_total_size(body, "GetEvents"), (page_index - 1) * page_size + len(data))
        log.debug(
            "GetEvents %s page %d/%d: %d events, totalSize %d",
            target.name,
            page_index,
            _last_page(total, page_size),
            len(events),
            total,
        )
        return EventsPage(events, total, page_index, page_size)

    def fetch_new(
        self,
        target: Target,
        *,
        floor: datetime | None,
        page_size: int = 100,
        max_pages: int = 20,
        order_hint: str | None = None,
    ) -> FetchResult:
        """Every event with created_at >= floor (all when floor is None), reading as few pages
        as the order allows. max_pages bounds the pages read per deployment id."""

        def below_floor(page: EventsPage) -> bool:
            return floor is not None and any(e.created_at < floor for e in page.events)

        results = [
            self._fetch(target, dep, floor, page_size, max_pages, order_hint, below_floor)
            for dep in _deployments(target)
        ]
        merged = _merge(results)
        log.debug(
            "GetEvents %s: %d events since %s in %d requests (order %s, complete %s)",
            target.name,
            len(merged.events),
            floor.isoformat() if floor else "the beginning",
            merged.requests,
            merged.order or "unknown",
            merged.complete,
        )
        return merged

    def fetch_latest(
        self, target: Target, page_size: int = 100, order_hint: str | None = None
    ) -> FetchResult:
        """Only the newest page (per deployment id): where a first run starting at "latest"
        begins. Always complete: older events are deliberately skipped."""
        results = [
            self._fetch(target, dep, None, page_size, 1, order_hint, lambda page: True)
            for dep in _deployments(target)
        ]
        merged = _merge(results)
        return FetchResult(merged.events, merged.order, True, 0, merged.total_size, merged.requests)

    def iter_events(
        self, target: Target, *, limit: int, deployment_id: str | None = None
    ) -> list[FlinkEvent]:
        """The newest `limit` events, newest first."""
        page_size = min(MAX_PAGE_SIZE, max(1, limit))
        pages_needed = math.ceil(limit / page_size) + 1
        collected: list[FlinkEvent] = []
        ids = (deployment_id,) if deployment_id else _deployments(target)
        for dep in ids:
            seen: set[str] = set()

            def enough(page: EventsPage, seen: set[str] = seen) -> bool:
                seen.update(event.event_id for event in page.events)
                return len(seen) >= limit

            result = self._fetch(target, dep, None, page_size, pages_needed, None, enough)
            collected.extend(result.events)
        return _unique_sorted(collected, newest_first=True)[:limit]

    def _fetch(
        self,
        target: Target,
        deployment_id: str | None,
        floor: datetime | None,
        page_size: int,
        max_pages: int,
        order_hint: str | None,
        done: Callable[[EventsPage], bool],
    ) -> FetchResult:
        walk = self._walk(target, deployment_id, page_size, max(1, max_pages), order_hint, done)
        events = [e for page in walk.pages for e in page.events]
        if floor is not None:
            events = [e for e in events if e.created_at >= floor]
        return FetchResult(
            events=_unique_sorted(events),
            order=walk.order,
            complete=walk.complete,
            unseen_estimate=0 if walk.complete else walk.unseen,
            total_size=walk.pages[-1].total_size,
            requests=walk.requests,
        )

    def _walk(
        self,
        target: Target,
        deployment_id: str | None,
        page_size: int,
        max_pages: int,
        order_hint: str | None,
        done: Callable[[EventsPage], bool],
    ) -> _Walk:
        requests = 0

        def fetch(index: int) -> EventsPage:
            nonlocal requests
            requests += 1
            return self.get_events_page(target, index, page_size, deployment_id)

        walk = self._walk_pages(fetch, page_size, max_pages, order_hint, done)
        walk.requests = requests
        return walk

    def _walk_pages(
        self,
        fetch: Callable[[int], EventsPage],
        page_size: int,
        max_pages: int,
        order_hint: str | None,
        done: Callable[[EventsPage], bool],
    ) -> _Walk:
        first = fetch(1)
        last = _last_page(first.total_size, page_size)
        seen_order = _page_order(first.events)
        order = seen_order or _known(order_hint)
        if last <= 1:
            return _Walk([first], order)
        tail = None
        # Page 1 alone cannot tell: compare it with the last page. A newest-first hint is
        # trusted as is; checking an oldest-first one is free (the walk starts there anyway).
        if seen_order is None and order != "desc":
            tail = fetch(last)
            order = _pages_order(first, tail) or order
        if order == "asc":
            return self._walk_backward(first, tail, fetch, max_pages, done)
        # The probed tail is old in newest-first order; the forward walk re-reads what it needs.
        walk = self._walk_forward(first, fetch, max_pages, done)
        walk.order = order
        return walk

    @staticmethod
    def _walk_forward(
        first: EventsPage,
        fetch: Callable[[int], EventsPage],
        max_pages: int,
        done: Callable[[EventsPage], bool],
    ) -> _Walk:
        """Newest first: pages 1, 2, … Events inserted meanwhile push older ones onto later
        pages, so an event is read twice (deduplicated) but never skipped."""
        walk, page = _Walk([first], "desc"), first
        while not done(page):
            if not page.events or page.page_index >= _last_page(page.total_size, page.page_size):
                return walk
            if len(walk.pages) >= max_pages:
                walk.complete = False
                walk.unseen = max(0, page.total_size - page.page_index * page.page_size)
                return walk
            page = fetch(page.page_index + 1)
            walk.pages.append(page)
        return walk

    @staticmethod
    def _walk_backward(
        first: EventsPage,
        tail: EventsPage | None,
        fetch: Callable[[int], EventsPage],
        max_pages: int,
        done: Callable[[EventsPage], bool],
    ) -> _Walk:
        """Oldest first: jump to the last page and walk back. Expired old events shift newer ones
        towards lower pages, i.e. towards pages still to read; page 1 (read first, to learn
        the order) is read again if the walk gets there because its content may have shifted."""
        page = tail or fetch(_last_page(first.total_size, first.page_size))
        walk = _Walk([page], "asc")
        while not done(page):
            if page.page_index <= 1:
                return walk
            if len(walk.pages) >= max_pages:
                walk.complete = False
                walk.unseen = (page.page_index - 1) * page.page_size
                return walk
            last = _last_page(page.total_size, page.page_size)
            page = fetch(min(page.page_index - 1, last))
            walk.pages.append(page)
        return walk

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
            body = self._call("ListDeployments", target, "deployments", query)
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

    def _call(self, action: str, target: Target, tail: str, query: dict[str, Any]) -> dict:
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
    ) -> dict:
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
            response = self._session.get(
                url, headers=headers, timeout=timeout, allow_redirects=False
            )
        except requests.Timeout:
            raise ApiError(f"{action}: no answer within {timeout:.1f}s", retryable=True) from None
        except _RETRYABLE_EXCEPTIONS as exc:
            reason = type(exc).__name__
            raise ApiError(f"{action}: connection failed ({reason})", retryable=True) from None
        except requests.RequestException as exc:
            raise ApiError(f"{action}: request failed ({type(exc).__name__})") from None
        return self._decode(action, response)

    def _decode(self, action: str, response: requests.Response) -> dict:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if status >= 400 or (isinstance(body, dict) and body.get("success") is False):
            raise self._api_error(action, status, body)
        if not isinstance(body, dict):
            raise MalformedResponseError(
                f"{action}: the response is not a JSON object", http_status=status
            )
        return body

    def _api_error(self, action: str, status: int, body: Any) -> ApiError:
        fields = body if isinstance(body, dict) else {}
        code = _first(fields, "Code", "code", "errorCode")
        message = _first(fields, "Message", "message", "errorMessage")
        if not message:
            message = f"HTTP {status}" + ("" if fields else " with a non-JSON body")
        retryable = code.startswith("Throttling") or status == 429 or status >= 500
        return ApiError(
            f"{action} failed: {' '.join(scrub(message).split())[:300]}",
            code=code,
            request_id=_first(fields, "RequestId", "requestId"),
            http_status=status,
            retryable=retryable,
            hint=_hint(action, code, status),
        )


def _new_session() -> requests.Session:
    session = requests.Session()
    # Targets are fetched concurrently; the default pool (10) would drop connections.
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=64)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _deployments(target: Target) -> tuple[str | None, ...]:
    return tuple(target.deployment_ids) or (None,)


def _known(order: str | None) -> str | None:
    return order if order in ("asc", "desc") else None


def _check_page_size(page_size: int) -> None:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}, not {page_size}")


def _last_page(total: int, page_size: int) -> int:
    return max(1, math.ceil(total / page_size))


def _page_order(events: list[FlinkEvent]) -> str | None:
    if len(events) < 2 or events[0].created_at == events[-1].created_at:
        return None
    return "desc" if events[0].created_at > events[-1].created_at else "asc"


def _pages_order(first: EventsPage, tail: EventsPage) -> str | None:
    """Order from page 1 versus the last page, when page 1 alone is ambiguous."""
    if not first.events or not tail.events:
        return None
    head = [e.created_at for e in first.events]
    end = [e.created_at for e in tail.events]
    if min(head) >= max(end) and max(head) > min(end):
        return "desc"
    if max(head) <= min(end) and min(head) < max(end):
        return "asc"
    return None


def _unique_sorted(events: Iterable[FlinkEvent], newest_first: bool = False) -> list[FlinkEvent]:
    unique: dict[str, FlinkEvent] = {}
    for event in events:
        unique.setdefault(event.event_id, event)
    key: Callable[[FlinkEvent], tuple] = lambda e: (e.created_at, e.event_id)  # noqa: E731
    return sorted(unique.values(), key=key, reverse=newest_first)


def _merge(results: list[FetchResult]) -> FetchResult:
    if len(results) == 1:
        return results[0]
    return FetchResult(
        events=_unique_sorted(e for r in results for e in r.events),
        order=next((r.order for r in results if r.order), None),
        complete=all(r.complete for r in results),
        unseen_estimate=sum(r.unseen_estimate for r in results),
        total_size=sum(r.total_size for r in results),
        requests=sum(r.requests for r in results),
    )


def _data_list(body: dict, action: str) -> list:
    data = body.get("data")
    if not isinstance(data, list):
        found = "missing" if data is None else type(data).__name__
        raise MalformedResponseError(f"{action}: `data` is {found}, expected a list")
    return data


def _total_size(body: dict, action: str) -> int:
    value = body.get("totalSize")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedResponseError(f"{action}: totalSize is {value!r}, expected a count")
    return value


def _first(fields: dict, *keys: str) -> str:
    for key in keys:
        if fields.get(key) not in (None, ""):
            return str(fields[key])
    return ""


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
