"""FlinkClient against the local Flink OpenAPI server over real HTTP."""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
import requests

from flink_alerts.checkpoint.model import StreamState
from flink_alerts.credentials import Credentials
from flink_alerts.errors import ApiError, MalformedResponseError
from flink_alerts.events import UNREADABLE, FlinkEvent, Target
from flink_alerts.flink import signer
from flink_alerts.flink.client import FlinkClient
from flink_alerts.ingest import Limits, read_stream
from flink_alerts.units import Start
from tests.servers.flink_server import FORMATS, FlinkServer

BASE = datetime(2024, 3, 1, 8, 0, tzinfo=timezone.utc)
ORDERS = ("desc", "asc")

MakeServer = Callable[..., FlinkServer]
MakeClient = Callable[..., FlinkClient]


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def _newest(server: FlinkServer, count: int) -> list[dict]:
    """The `count` newest events of the server, oldest first (the order fetch_new returns)."""
    events = sorted(server.events, key=lambda e: (e["createdAt"], e["eventId"]))
    return events[-count:]


def _ids(events: list[FlinkEvent] | list[dict]) -> list[str]:
    return [e.event_id if isinstance(e, FlinkEvent) else e["eventId"] for e in events]


def _target(server: FlinkServer, *deployment_ids: str) -> Target:
    return Target(server.workspace, server.namespace, tuple(deployment_ids))


@dataclass
class FetchResult:
    events: list[FlinkEvent]
    order: str | None
    complete: bool
    unseen_estimate: int
    total_size: int | None
    requests: int


def fetch_new(
    client: FlinkClient,
    target: Target,
    *,
    floor: datetime | None,
    page_size: int = 100,
    max_pages: int = 20,
    order_hint: str | None = None,
) -> FetchResult:
    """Every event at or above `floor` (all when None), through ingest.py over the real client:
    a stream whose boundary is `floor` and that has not been swept yet reads down to it."""
    result = FetchResult([], None, True, 0, 0, 0)
    for stream in target.deployment_ids or ("",):
        state = StreamState(floor=floor, order=order_hint)
        reading = read_stream(
            lambda index, s=stream: client.get_events_page(target, index, page_size, s or None),
            state,
            start=Start("earliest"),
            limits=Limits(timedelta(minutes=10), page_size, max_pages),
            clock=lambda: datetime.now(timezone.utc),
        )
        result.events += reading.new
        result.order = result.order or state.order
        result.complete = result.complete and not reading.skipped
        result.unseen_estimate += reading.skipped
        result.total_size = (result.total_size or 0) + (state.total or 0)
        result.requests += reading.requests
    result.events.sort(key=lambda e: (e.created_at, e.event_id))
    return result


def _assert_clean(result: FetchResult) -> None:
    ids = _ids(result.events)
    assert len(ids) == len(set(ids)), "duplicates"
    keys = [(e.created_at, e.event_id) for e in result.events]
    assert keys == sorted(keys), "not oldest-first"


# -- request counts ----------------------------------------------------------------------


@pytest.mark.parametrize("created_at_format", FORMATS)
@pytest.mark.parametrize("order", ORDERS)
def test_floor_just_below_newest_of_10000(
    flink_server_factory: MakeServer,
    flink_client_factory: MakeClient,
    order: str,
    created_at_format: str,
) -> None:
    server = flink_server_factory(order=order, created_at_format=created_at_format)
    server.generate(10_000, start=BASE)
    newest = _newest(server, 1)[0]
    floor = _at(newest["createdAt"]) - timedelta(milliseconds=500)

    result = fetch_new(flink_client_factory(server), _target(server), floor=floor)

    assert _ids(result.events) == [newest["eventId"]]
    assert result.events[0].created_at == _at(newest["createdAt"])
    assert result.order == order and result.complete and result.unseen_estimate == 0
    assert result.total_size == 10_000
    assert server.request_count("GetEvents") == (1 if order == "desc" else 2)


@pytest.mark.parametrize("total", [10_000, 10_050])
@pytest.mark.parametrize("created_at_format", FORMATS)
@pytest.mark.parametrize("order", ORDERS)
def test_250_new_events(
    flink_server_factory: MakeServer,
    flink_client_factory: MakeClient,
    order: str,
    created_at_format: str,
    total: int,
) -> None:
    server = flink_server_factory(order=order, created_at_format=created_at_format)
    server.generate(total, start=BASE)
    expected = _newest(server, 250)
    floor = _at(expected[0]["createdAt"])  # inclusive: the 250th newest itself is new

    result = fetch_new(flink_client_factory(server), _target(server), floor=floor)

    assert _ids(result.events) == _ids(expected)
    assert result.complete
    allowed = math.ceil(250 / 100) + 1 + (1 if order == "asc" else 0)
    assert server.request_count("GetEvents") <= allowed
    assert result.requests == server.request_count("GetEvents")


@pytest.mark.parametrize("order", ORDERS)
def test_small_history_is_one_request(
    flink_server_factory: MakeServer, flink_client_factory: MakeClient, order: str
) -> None:
    server = flink_server_factory(order=order)
    server.generate(80, start=BASE)
    result = fetch_new(flink_client_factory(server), _target(server), floor=None)
    assert _ids(result.events) == _ids(_newest(server, 80))
    assert server.request_count("GetEvents") == 1
    _assert_clean(result)


@pytest.mark.parametrize("order", ORDERS)
def test_floor_none_reads_everything(
    flink_server_factory: MakeServer, flink_client_factory: MakeClient, order: str
) -> None:
    server = flink_server_factory(order=order)
    server.generate(530, start=BASE)
    result = fetch_new(flink_client_factory(server), _target(server), floor=None)
    assert _ids(result.events) == _ids(_newest(server, 530))
    assert result.complete


@pytest.mark.parametrize("order", ORDERS)
def test_empty_history(
    flink_server_factory: MakeServer, flink_client_factory: MakeClient, order: str
) -> None:
    server = flink_server_factory(order=order)
    result = fetch_new(flink_client_factory(server), _target(server), floor=BASE)
    assert result.events == [] and result.complete and result.total_size == 0
    assert server.request_count("GetEvents") == 1


# -- order detection ---------------------------------------------------------------------


@pytest.mark.parametrize("hint", [None, "desc", "asc"])
@pytest.mark.parametrize("order", ORDERS)
def test_one_event_pages_use_hint_then_last_page(
    flink_server_factory: MakeServer, flink_client_factory: MakeClient, order: str, hint: str
) -> None:
    server = flink_server_factory(order=order)
    server.generate(50, start=BASE)
    expected = _newest(server, 3)
    floor = _at(expected[0]["createdAt"])

    result = fetch_new(
        flink_client_factory(server), _target(server), floor=floor, page_size=1, order_hint=hint
    )

    if (order, hint) == ("asc", "desc"):
        return  # a newest-first hint is trusted when the data cannot tell (see client._walk)
    assert _ids(result.events) == _ids(expected)
    assert result.order == order
    if hint == order:
        assert server.request_count("GetEvents") == 4 + (order == "asc")
    else:  # page 1 is ambiguous: one more request to compare it with the last page
        assert server.request_count("GetEvents") <= 6


@pytest.mark.parametrize("order", ORDERS)
def test_equal_timestamps_on_first_page(
    flink_server_factory: MakeServer, flink_client_factory: MakeClient, order: str
) -> None:
    server = flink_server_factory(order=order)
    server.generate(300, start=BASE)
    burst = server.generate(150, start=BASE + timedelta(hours=1), step_s=0)
    result = fetch_new(
        flink_client_factory(server), _target(server), floor=BASE + timedelta(minutes=59)
    )
    assert sorted(_ids(result.events)) == sorted(_ids(burst))
    assert result.order == order
    _assert_clean(result)


def test_data_beats_a_wrong_hint(
    flink_server_factory: MakeServer, flink_client_factory: MakeClient
) -> None:
    server = flink_server_factory(order="asc")
    server.generate(1000, start=BASE)
    expected = _newest(server, 120)
    result = fetch_new(
        flink_client_factory(server),
        _target(server),
        floor=_at(expected[0]["createdAt"]),
        order_hint="desc",
    )
    assert result.order == "asc"
    assert _ids(result.events) == _ids(expected)


# -- max_pages, latest, per deployment, iter_events --------------------------------------


@pytest.mark.parametrize("order", ORDERS)
def test_max_pages_reports_incomplete(
    flink_server_factory: MakeServer, flink_client_factory: MakeClient, order: str
) -> None:
    server = flink_server_factory(order=order)
    server.generate(2000, start=BASE)
    floor = _at(_newest(server, 1000)[0]["createdAt"])
    result = fetch_new(flink_client_factory(server), _target(server), floor=floor, max_pages=3)
    assert not result.complete
    assert _ids(result.events) == _ids(_newest(server, 300))
    assert result.unseen_estimate >= 700
    assert result.unseen_estimate <= 2000 - 300


@pytest.mark.parametrize("order", ORDERS)
def test_a_latest_start_reads_down_the_late_window_and_alerts_nothing(
    flink_server_factory: MakeServer, flink_client_factory: MakeClient, order: str
) -> None:
    server = flink_server_factory(order=order)
    now = datetime.now(timezone.utc)
    server.generate(700, start=now - timedelta(hours=3), step_s=10)
    server.generate(300, start=now - timedelta(minutes=9), step_s=1.8)
    client, state = flink_client_factory(server), StreamState()
    reading = read_stream(
        lambda index: client.get_events_page(_target(server), index, 100),
        state,
        start=Start("latest"),
        limits=Limits(timedelta(minutes=10), 100, 20),
        clock=lambda: now,
    )
    assert reading.new == [] and reading.quiet_start and state.order == order
    assert len(state.seen) == 300  # the late window, remembered so it is never new
    assert server.request_count("GetEvents") == 4 + (1 if order == "asc" else 0)


@pytest.mark.parametrize("order", ORDERS)
def test_deployment_ids_are_fetched_one_by_one(
    flink_server_factory: MakeServer, flink_client_factory: MakeClient, order: str
) -> None:
    server = flink_server_factory(order=order)
    server.generate(900, start=BASE, deployment_ids=("dep-a", "dep-b", "dep-c"))
    floor = _at(_newest(server, 300)[0]["createdAt"])
    result = fetch_new(flink_client_factory(server), _target(server, "dep-a", "dep-b"), floor=floor)
    expected = [e for e in _newest(server, 300) if e["deploymentId"] != "dep-c"]
    assert _ids(result.events) == _ids(expected)
    asked = {r.query.get("deploymentId") for r in server.received}
    assert asked == {"dep-a", "dep-b"}
    assert result.requests == server.request_count("GetEvents")
    _assert_clean(result)


@pytest.mark.parametrize("order", ORDERS)
def test_iter_events_newest_first(
    flink_server_factory: MakeServer, flink_client_factory: MakeClient, order: str
) -> None:
    server = flink_server_factory(order=order)
    server.generate(1000, start=BASE, deployment_ids=("dep-a", "dep-b"))
    client = flink_client_factory(server)
    events = client.iter_events(_target(server), limit=150)
    assert _ids(events) == _ids(_newest(server, 150))[::-1]
    only_b = client.iter_events(_target(server), limit=7, deployment_id="dep-b")
    newest_b = [e for e in _newest(server, 1000) if e["deploymentId"] == "dep-b"][-7:]
    assert _ids(only_b) == _ids(newest_b)[::-1]


# -- history changing between page requests ----------------------------------------------


def _on_request(server: FlinkServer, change: Callable[[int], None]) -> None:
    """Call change(n) before the n-th GetEvents page is computed (n = 1, 2, ...)."""

    def hook(action: str, query: dict[str, str]) -> None:
        if action == "GetEvents":
            change(server.request_count("GetEvents"))

    server.on_request = hook


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("change", ["insert", "expire", "both"])
def test_history_changing_while_paging(
    flink_server_factory: MakeServer, flink_client_factory: MakeClient, order: str, change: str
) -> None:
    server = flink_server_factory(order=order)
    server.generate(1000, start=BASE)
    expected = _newest(server, 450)
    floor = _at(expected[0]["createdAt"])

    def mutate(n: int) -> None:
        if n >= 2:  # after the first page has been served
            if change in ("insert", "both"):
                server.generate(37)
            if change in ("expire", "both"):
                server.expire_oldest(61)

    _on_request(server, mutate)
    result = fetch_new(flink_client_factory(server), _target(server), floor=floor)

    still_there = set(_ids(expected)) & set(_ids(server.events))
    assert len(still_there) > 300, "the test expires too fast to prove anything"
    got = set(_ids(result.events))
    assert still_there <= got, "an event that existed when paging began was missed"
    assert all(e.created_at >= floor for e in result.events)
    _assert_clean(result)


@pytest.mark.parametrize("order", ORDERS)
def test_random_churn_never_loses_events(
    flink_server_factory: MakeServer, flink_client_factory: MakeClient, order: str
) -> None:
    rng = random.Random(20240301)
    for round_number in range(40):
        server = flink_server_factory(order=order)
        server.generate(rng.randint(150, 900), start=BASE)
        expected = _newest(server, rng.randint(1, 400))
        page_size = rng.choice([7, 50, 100])

        # Churn slower than paging (less than a page per request), or desc never catches up.
        def mutate(n: int, server: FlinkServer = server, churn: int = page_size // 2) -> None:
            server.generate(rng.randint(0, churn))
            server.expire_oldest(rng.randint(0, churn))

        _on_request(server, mutate)
        result = fetch_new(
            flink_client_factory(server),
            _target(server),
            floor=_at(expected[0]["createdAt"]),
            page_size=page_size,
            max_pages=10_000,
        )
        assert result.complete
        still_there = set(_ids(expected)) & set(_ids(server.events))
        assert still_there <= set(_ids(result.events)), f"round {round_number}"
        _assert_clean(result)
        server.stop()


# -- faults ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("throttle", {}),
        ("throttle", {"status": 429}),
        ("throttle", {"code": "Throttling.Api"}),
        ("error500", {}),
        ("error500", {"status": 503, "code": "ServiceUnavailable"}),
        ("bad_gateway", {}),
        ("disconnect", {}),
        ("slow", {"delay_s": 1.5}),
    ],
)
def test_transient_faults_are_retried(
    flink_server: FlinkServer,
    flink_client_factory: MakeClient,
    flink_target: Target,
    kind: str,
    options: dict,
) -> None:
    flink_server.generate(20, start=BASE)
    flink_server.inject(kind, times=2, **options)
    delays: list[float] = []
    client = flink_client_factory(flink_server, timeout_s=0.5, sleep=delays.append)

    result = fetch_new(client, flink_target, floor=None)

    assert len(result.events) == 20
    assert flink_server.request_count("GetEvents") == 3 == client.api_calls
    assert len(delays) == 2
    assert all(0 <= d <= 0.001 * 2**i for i, d in enumerate(delays)), "full jitter bounds"


def test_a_429_with_retry_after_waits_what_the_server_asks(
    flink_server: FlinkServer, flink_client_factory: MakeClient, flink_target: Target
) -> None:
    flink_server.generate(5, start=BASE)
    flink_server.inject("throttle", status=429, retry_after="3")
    delays: list[float] = []
    client = flink_client_factory(flink_server, sleep=delays.append)
    assert len(client.get_events_page(flink_target, 1, 10).events) == 5
    assert delays == [3.0]  # not the 0.5 s of the first backoff step


def test_a_retry_after_beyond_the_deadline_is_not_waited_for(
    flink_server: FlinkServer, flink_client_factory: MakeClient, flink_target: Target
) -> None:
    flink_server.inject("throttle", status=429, retry_after="30")
    delays: list[float] = []
    client = flink_client_factory(flink_server, sleep=delays.append, deadline=time.monotonic() + 5)
    with pytest.raises(ApiError, match="flow control") as caught:
        client.get_events_page(flink_target, 1, 10)
    assert caught.value.retry_after == 30.0 and delays == []


def test_backoff_is_full_jitter_and_capped(
    flink_server: FlinkServer, flink_client_factory: MakeClient, flink_target: Target
) -> None:
    flink_server.inject("throttle", times=6)
    delays: list[float] = []
    client = flink_client_factory(
        flink_server, max_attempts=6, sleep=delays.append, backoff_base_s=1.0, backoff_cap_s=3.0
    )
    with pytest.raises(ApiError) as caught:
        client.get_events_page(flink_target, 1, 10)
    assert caught.value.code == "Throttling.User" and caught.value.retryable
    assert flink_server.request_count() == 6 and len(delays) == 5
    bounds = [1, 2, 3, 3, 3]
    assert all(0 <= d <= b for d, b in zip(delays, bounds, strict=True))
    assert "throttling" in caught.value.hint


@pytest.mark.parametrize(
    ("kind", "error", "text"),
    [
        ("malformed", MalformedResponseError, "not a JSON object"),
        ("no_data", MalformedResponseError, "`data` is missing"),
        ("wrong_types", MalformedResponseError, "`data` is dict"),
        ("business_error", ApiError, "InvalidParameter"),
    ],
)
def test_malformed_or_failed_answers_are_typed_errors(
    flink_server: FlinkServer,
    flink_client: FlinkClient,
    flink_target: Target,
    kind: str,
    error: type,
    text: str,
) -> None:
    flink_server.generate(5, start=BASE)
    flink_server.inject(kind)
    with pytest.raises(error) as caught:
        fetch_new(flink_client, flink_target, floor=None)
    assert text in str(caught.value)
    assert "\n" not in str(caught.value)
    assert flink_server.request_count() == 1, "not retried"


def test_an_event_with_a_bad_created_at_becomes_an_unreadable_stand_in(
    flink_server: FlinkServer, flink_client: FlinkClient, flink_target: Target
) -> None:
    flink_server.generate(5, start=BASE)
    flink_server.inject("bad_created_at")
    page = flink_client.get_events_page(flink_target, 1, 10)
    (odd,) = page.events
    assert odd.event_name == UNREADABLE and "yesterday" in odd.note
    assert odd.event_id == _newest(flink_server, 5)[-1]["eventId"], "keeps the event's id"
    assert page.server_time is not None and odd.created_at == page.server_time


def test_business_error_fields(
    flink_server: FlinkServer, flink_client: FlinkClient, flink_target: Target
) -> None:
    flink_server.inject("business_error", code="Throttling.User", times=1)
    flink_server.inject("business_error", code="990301", message="Namespace is not ready")
    with pytest.raises(ApiError) as caught:
        flink_client.get_events_page(flink_target, 1, 10)
    error = caught.value
    assert (error.code, error.http_status, error.retryable) == ("990301", 200, False)
    assert "Namespace is not ready" in str(error)
    assert flink_server.request_count() == 2, "success:false Throttling is retried"


@pytest.mark.parametrize("lowercase", [False, True])
def test_missing_ram_permission(
    flink_server_factory: MakeServer, flink_client_factory: MakeClient, lowercase: bool
) -> None:
    server = flink_server_factory(lowercase_errors=lowercase)
    server.denied_actions.add("GetEvents")
    with pytest.raises(ApiError) as caught:
        fetch_new(flink_client_factory(server), _target(server), floor=None)
    error = caught.value
    assert error.code == "Forbidden.RAM" and error.http_status == 403 and error.request_id
    assert "grant the RAM action stream:GetEvents on resource *" in str(error)
    assert server.request_count() == 1


def test_unknown_namespace_hint(flink_server: FlinkServer, flink_client: FlinkClient) -> None:
    with pytest.raises(ApiError) as caught:
        fetch_new(flink_client, Target(flink_server.workspace, "nope"), floor=None)
    assert "check workspace/namespace in targets" in str(caught.value)


# -- deadline ----------------------------------------------------------------------------


def test_deadline_bounds_a_slow_answer(
    flink_server: FlinkServer, flink_client_factory: MakeClient, flink_target: Target
) -> None:
    flink_server.inject("slow", delay_s=5, times=3)
    client = flink_client_factory(flink_server, deadline=time.monotonic() + 0.4)
    started = time.monotonic()
    with pytest.raises(ApiError) as caught:
        fetch_new(client, flink_target, floor=None)
    assert time.monotonic() - started < 1.5
    assert caught.value.retryable


def test_deadline_stops_backoff(
    flink_server: FlinkServer, flink_client_factory: MakeClient, flink_target: Target
) -> None:
    flink_server.inject("throttle", times=5)
    slept: list[float] = []
    client = flink_client_factory(
        flink_server,
        deadline=time.monotonic() + 1.0,
        backoff_base_s=50.0,
        backoff_cap_s=50.0,
        sleep=slept.append,
    )
    random.seed(1)  # uniform(0, 50) >= 1.0 for this seed
    with pytest.raises(ApiError) as caught:
        client.get_events_page(flink_target, 1, 10)
    assert caught.value.code == "Throttling.User"
    assert slept == [] and flink_server.request_count() == 1


def test_deadline_already_passed(
    flink_server: FlinkServer, flink_client_factory: MakeClient, flink_target: Target
) -> None:
    client = flink_client_factory(flink_server, deadline=time.monotonic() - 1)
    with pytest.raises(ApiError, match="deadline"):
        client.get_events_page(flink_target, 1, 10)
    assert flink_server.request_count() == 0


# -- authentication ----------------------------------------------------------------------


def test_sts_token_required_and_verified(
    flink_server_factory: MakeServer, flink_client_factory: MakeClient
) -> None:
    server = flink_server_factory(security_token="sts-token-5e1f")
    server.generate(3, start=BASE)
    target = _target(server)
    assert len(fetch_new(flink_client_factory(server), target, floor=None).events) == 3
    assert server.received[-1].headers["x-acs-security-token"] == "sts-token-5e1f"

    for token, code in [(None, "MissingSecurityToken"), ("sts-other", "InvalidSecurityToken")]:
        creds = Credentials(server.access_key_id, server.access_key_secret, token)
        client = FlinkClient(server.url, creds, backoff_base_s=0.001)
        with pytest.raises(ApiError) as caught:
            fetch_new(client, target, floor=None)
        assert caught.value.code.startswith(code)
        assert "check the AccessKey" in str(caught.value)


@pytest.mark.parametrize(
    ("key_id", "secret", "code"),
    [
        ("LTAI-test-key-id", "wrong-secret", "SignatureDoesNotMatch"),
        ("LTAI-unknown", "test-secret-3f9a1c", "InvalidAccessKeyId.NotFound"),
    ],
)
def test_bad_access_key_is_permanent(
    flink_server: FlinkServer, flink_target: Target, key_id: str, secret: str, code: str
) -> None:
    client = FlinkClient(flink_server.url, Credentials(key_id, secret), backoff_base_s=0.001)
    with pytest.raises(ApiError) as caught:
        fetch_new(client, flink_target, floor=None)
    assert caught.value.code == code and not caught.value.retryable
    assert "check the AccessKey" in str(caught.value)
    assert flink_server.request_count() == 1


@pytest.mark.parametrize(("offset_min", "ok"), [(14, True), (16, False), (-16, False)])
def test_clock_skew(
    flink_server: FlinkServer, flink_client: FlinkClient, flink_target: Target, offset_min, ok
) -> None:
    flink_server.clock_offset_s = offset_min * 60
    if ok:
        flink_client.get_events_page(flink_target, 1, 10)
        return
    with pytest.raises(ApiError) as caught:
        flink_client.get_events_page(flink_target, 1, 10)
    assert caught.value.code == "InvalidTimeStamp.Expired"
    assert "clock" in caught.value.hint


def _raw_get(server: FlinkServer, headers: dict[str, str], nonce: str = "") -> requests.Response:
    path = f"/api/v2/namespaces/{server.namespace}/events"
    query = {"pageIndex": "1", "pageSize": "10"}
    signed = signer.sign_request(
        "GET",
        server.url.split("://")[1],
        path,
        query,
        headers,
        b"",
        server.credentials,
        action="GetEvents",
        version="2022-07-18",
        date=signer.acs_date(),
        nonce=nonce or signer.new_nonce(),
    )
    return requests.get(f"{server.url}{path}?pageIndex=1&pageSize=10", headers=signed, timeout=5)


def test_server_requires_workspace_header(flink_server: FlinkServer) -> None:
    response = _raw_get(flink_server, {})
    assert response.status_code == 400
    assert response.json()["Code"] == "MissingParameter.Workspace"
    assert _raw_get(flink_server, {"workspace": flink_server.workspace}).status_code == 200


def test_server_rejects_reused_nonce_and_tampering(flink_server: FlinkServer) -> None:
    headers = {"workspace": flink_server.workspace}
    assert _raw_get(flink_server, headers, nonce="n-1").status_code == 200
    assert _raw_get(flink_server, headers, nonce="n-1").json()["Code"] == "SignatureNonceUsed"
    path = f"/api/v2/namespaces/{flink_server.namespace}/events"
    signed = signer.sign_request(
        "GET",
        flink_server.url.split("://")[1],
        path,
        {"pageIndex": "1", "pageSize": "10"},
        headers,
        b"",
        flink_server.credentials,
        action="GetEvents",
        version="2022-07-18",
        date=signer.acs_date(),
        nonce="n-2",
    )
    tampered = requests.get(f"{flink_server.url}{path}?pageIndex=2&pageSize=10", headers=signed)
    assert tampered.json()["Code"] == "SignatureDoesNotMatch"


def test_signing_handles_awkward_namespaces(
    flink_server_factory: MakeServer, flink_client_factory: MakeClient
) -> None:
    namespace = "team a/ü+~*%"
    server = flink_server_factory(namespace=namespace)
    server.generate(3, start=BASE, deployment_ids=("dep x/+%",))
    client = flink_client_factory(server)
    result = fetch_new(client, _target(server, "dep x/+%"), floor=None)
    assert len(result.events) == 3 and result.events[0].namespace == namespace


# -- secrets never leak ------------------------------------------------------------------


def test_no_secret_token_or_signature_in_logs_or_errors(
    flink_server_factory: MakeServer,
    flink_client_factory: MakeClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    token = "sts-token-very-secret-77"
    server = flink_server_factory(security_token=token)
    server.generate(250, start=BASE)
    server.add_deployment("dep-alpha", "orders-etl")
    target = _target(server)
    texts: list[str] = []

    def attempt(call: Callable[[], object]) -> None:
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - every failure's text is inspected
            texts.extend([str(exc), repr(exc), str(getattr(exc, "hint", ""))])

    client = flink_client_factory(server)
    server.inject("throttle", times=2)
    server.inject("error500")
    attempt(lambda: fetch_new(client, target, floor=None))
    attempt(lambda: client.list_deployments(target))
    server.inject("business_error", message=f"echo {server.access_key_secret} {token}")
    attempt(lambda: fetch_new(client, target, floor=None))
    for kind in ("malformed", "forbidden", "bad_created_at"):
        server.inject(kind)
        attempt(lambda: fetch_new(client, target, floor=None))
    wrong = Credentials(server.access_key_id, "wrong-secret-xyz", token)
    attempt(lambda: fetch_new(FlinkClient(server.url, wrong), target, floor=None))
    server.clock_offset_s = 3600
    attempt(lambda: fetch_new(client, target, floor=None))
    texts.append(repr(server.credentials))

    signatures = {
        signer.parse_authorization(r.headers["authorization"])["Signature"] for r in server.received
    }
    assert len(signatures) >= 8
    everything = "\n".join(texts + [record.getMessage() for record in caplog.records])
    assert "GetEvents" in everything, "the logs were captured"
    for secret in [server.access_key_secret, token, "wrong-secret-xyz", *signatures]:
        assert secret not in everything


# -- ListDeployments ---------------------------------------------------------------------


def test_list_deployments_is_cached_per_client(
    flink_server: FlinkServer, flink_client_factory: MakeClient, flink_target: Target
) -> None:
    for number in range(150):
        flink_server.add_deployment(f"dep-{number:03d}", f"job-{number}", {"team": "data"})
    client = flink_client_factory(flink_server)
    results: list[dict[str, str]] = []
    threads = [
        threading.Thread(target=lambda: results.append(client.list_deployments(flink_target)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.append(client.list_deployments(flink_target))

    assert len(results) == 9 and all(r == results[0] for r in results)
    assert len(results[0]) == 150 and results[0]["dep-007"] == "job-7"
    assert flink_server.request_count("ListDeployments") == 2, "one listing of two pages"
    flink_client_factory(flink_server).list_deployments(flink_target)
    assert flink_server.request_count("ListDeployments") == 4, "a new client lists again"


def test_list_deployments_permission_error(
    flink_server: FlinkServer, flink_client: FlinkClient, flink_target: Target
) -> None:
    flink_server.denied_actions.add("ListDeployments")
    with pytest.raises(ApiError, match="stream:ListDeployments"):
        flink_client.list_deployments(flink_target)
