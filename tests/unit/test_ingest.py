"""ingest.py against an in-memory model of GetEvents: offset pages in either order, events that
appear late or between page requests, equal timestamps, expiry, unreadable events, cuts."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flink_alerts.checkpoint.model import StreamState
from flink_alerts.events import UNREADABLE, EventsPage, FlinkEvent, Target
from flink_alerts.ingest import BACKLOG, SWEEP_EVERY, Limits, ingest_target, read_stream
from flink_alerts.units import Start

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=timezone.utc)
OVERLAP = timedelta(minutes=10)
TARGET = Target("ws", "ns")


@dataclass
class Stored:
    event_id: str
    created_at: datetime
    unreadable: bool = False


@dataclass
class Api:
    """GetEvents as the bridge sees it: a history sorted by createdAt, served in offset pages."""

    order: str = "desc"
    now: datetime = T0
    events: list[Stored] = field(default_factory=list)
    between_pages: list[int] = field(default_factory=list)  # events to add after each request
    requests: int = 0
    serial: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock)
    in_flight: int = 0
    most_in_flight: int = 0
    latency_s: float = 0.0

    def add(self, lateness: timedelta = timedelta(0), *, unreadable: bool = False) -> Stored:
        self.serial += 1
        # Whole seconds: equal timestamps are common.
        created = (self.now - lateness).replace(microsecond=0)
        stored = Stored(f"e{self.serial:05d}", created, unreadable)
        self.events.append(stored)
        return stored

    def expire_before(self, moment: datetime) -> None:
        self.events = [e for e in self.events if e.created_at >= moment]

    def page(self, index: int, size: int) -> EventsPage:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(self.latency_s)
        with self.lock:
            self.in_flight -= 1
            return self._page(index, size)

    def _page(self, index: int, size: int) -> EventsPage:
        self.requests += 1
        ordered = sorted(self.events, key=lambda e: (e.created_at, e.event_id))
        if self.order == "desc":
            ordered.reverse()
        chunk = ordered[(index - 1) * size : index * size]
        events = [self._render(e) for e in chunk]
        page = EventsPage(events, index, len(ordered), self.now, len(chunk))
        for _ in range(self.between_pages.pop(0) if self.between_pages else 0):
            self.add(timedelta(seconds=random.randint(0, 30)))
        return page

    def _render(self, stored: Stored) -> FlinkEvent:
        if stored.unreadable:
            raw = {"eventId": stored.event_id, "createdAt": None}
            return FlinkEvent.unreadable(
                raw, "createdAt is missing", read_at=self.now, workspace="ws", namespace="ns"
            )
        return FlinkEvent(stored.event_id, "JOB_FAILED", stored.created_at, "ws", "ns")


def read(api: Api, state: StreamState, *, start="latest", page_size=10, max_pages=1000, parallel=1):
    limits = Limits(OVERLAP, page_size, max_pages, parallel)
    return read_stream(
        lambda index: api.page(index, page_size),
        state,
        start=Start.parse(start, float),
        limits=limits,
        clock=lambda: api.now,
    )


# -- properties ----------------------------------------------------------------------------

steps = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(1, 25), st.integers(0, 600)),  # count, max lateness s
        st.tuples(st.just("wait"), st.integers(1, 300), st.just(0)),  # seconds
        st.tuples(st.just("run"), st.integers(0, 3), st.integers(0, 2)),  # inserts between pages
        st.tuples(st.just("expire"), st.just(0), st.just(0)),
        st.tuples(st.just("odd"), st.integers(0, 1), st.integers(1, 7200)),  # unreadable / future
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    order=st.sampled_from(["desc", "asc"]),
    backlog=st.integers(0, 60),
    script=steps,
    seed=st.integers(0, 2**16),
    parallel=st.sampled_from([1, 4]),
)
def test_every_event_visible_after_the_first_read_is_new_exactly_once(
    order, backlog, script, seed, parallel
):
    random.seed(seed)
    api = Api(order=order)
    for _ in range(backlog):  # history before the first run, some of it recent
        api.add(timedelta(seconds=random.randint(0, 1200)))
    state = StreamState()
    first = read(api, state)
    assert first.new == [] and first.quiet_start
    before_first = {e.event_id for e in api.events}
    reported: list[str] = []
    for kind, a, b in script:
        if kind == "add":
            for _ in range(a):
                api.add(timedelta(seconds=random.randint(0, b)))
        elif kind == "wait":
            api.now += timedelta(seconds=a)
        elif kind == "expire":
            api.expire_before(api.now - 6 * OVERLAP)
        elif kind == "odd":
            api.add(-timedelta(seconds=b), unreadable=bool(a))
        else:
            api.between_pages = [a] * b
            reported += [e.event_id for e in read(api, state, parallel=parallel).new]
    api.between_pages = []
    api.now += OVERLAP * SWEEP_EVERY  # the next run sweeps: whatever the count hid is found now
    reported += [e.event_id for e in read(api, state).new]
    assert len(reported) == len(set(reported)), "an event was new twice"
    assert not set(reported) & before_first, "an event visible at the `latest` start was new"
    assert set(reported) == {e.event_id for e in api.events} - before_first


@settings(max_examples=100, deadline=None)
@given(
    order=st.sampled_from(["desc", "asc"]),
    bursts=st.lists(st.integers(0, 90), min_size=1, max_size=8),
    max_pages=st.integers(1, 4),
    parallel=st.sampled_from([1, 3]),
)
def test_a_backlog_beyond_max_pages_is_counted_not_lost(order, bursts, max_pages, parallel):
    api = Api(order=order)
    state = StreamState()
    read(api, state, max_pages=max_pages)
    reported: list[str] = []
    skipped = 0
    for burst in bursts:
        api.now += timedelta(minutes=1)
        for _ in range(burst):
            api.add()
        reading = read(api, state, max_pages=max_pages, parallel=parallel)
        reported += [e.event_id for e in reading.new]
        assert reading.skipped_exact
        skipped += reading.skipped
    assert len(reported) == len(set(reported))
    assert len(reported) + skipped == sum(bursts)


# -- cost ----------------------------------------------------------------------------------


@pytest.mark.parametrize("order, calls", [("desc", 1), ("asc", 2)])
@pytest.mark.parametrize("every_s", [1, 5, 3600])
def test_a_steady_run_costs_the_lower_bound(order, calls, every_s):
    """1 call newest-first (2 oldest-first) plus one per page of new events, at any event rate,
    between sweeps (oldest-first, new events may straddle the last two pages)."""
    api = Api(order=order)
    for second in range(0, 7200, every_s):
        api.events.append(Stored(f"old{second}", T0 - timedelta(seconds=second)))
    state = StreamState()
    read(api, state, page_size=100)
    for minute in range(1, SWEEP_EVERY * 10):
        api.now = T0 + timedelta(minutes=minute)
        new = 60 // every_s
        for _ in range(new):
            api.add()
        api.requests = 0
        reading = read(api, state, page_size=100)
        assert len(reading.new) == new
        if minute < SWEEP_EVERY * 10:  # a sweep is due every SWEEP_EVERY overlap windows
            pages_of_new = -(-new // 100) if order == "asc" else new // 100
            assert api.requests <= calls + pages_of_new, (minute, api.requests)
        assert reading.changed or not new


def test_a_quiet_run_writes_nothing_and_a_sweep_reads_down_to_the_floor():
    api = Api()
    for second in range(0, 3600, 5):
        api.events.append(Stored(f"old{second}", T0 - timedelta(seconds=second)))
    state = StreamState()
    read(api, state, page_size=100)
    api.now += timedelta(minutes=1)
    api.requests = 0
    assert not read(api, state, page_size=100).changed and api.requests == 1
    api.now += OVERLAP * SWEEP_EVERY
    api.requests = 0
    read(api, state, page_size=100)
    assert api.requests == 2  # 120 events above the floor (10 min at 1/5 s): 2 pages


# -- examples ------------------------------------------------------------------------------


def test_a_latest_start_over_recent_events_then_one_failure_is_exactly_that_failure():
    api = Api()
    for second in range(0, 600, 2):  # 300 failure-looking events in the last 10 minutes
        api.events.append(Stored(f"recent{second}", T0 - timedelta(seconds=second)))
    state = StreamState()
    assert read(api, state).new == []
    api.now += timedelta(minutes=1)
    failure = api.add()
    assert [e.event_id for e in read(api, state).new] == [failure.event_id]


def test_an_event_dated_in_the_future_neither_hides_others_nor_comes_back():
    api = Api()
    state = StreamState()
    read(api, state)
    api.now += timedelta(minutes=1)
    ahead = api.add(-timedelta(hours=1))
    first = read(api, state).new
    assert [e.event_id for e in first] == [ahead.event_id]
    assert "1 h 0 min ahead of the API's clock" in first[0].note
    for minutes in (2, 30, 50):
        api.now = T0 + timedelta(minutes=minutes)
        failure = api.add(timedelta(seconds=5))
        assert [e.event_id for e in read(api, state).new] == [failure.event_id]


def test_an_unreadable_event_is_new_once_and_does_not_block_the_others():
    api = Api()
    state = StreamState()
    read(api, state)
    api.now += timedelta(minutes=1)
    odd = api.add(unreadable=True)
    good = api.add()
    new = read(api, state).new
    assert {e.event_id for e in new} == {odd.event_id, good.event_id}
    assert [e.event_name for e in new if e.event_id == odd.event_id] == [UNREADABLE]
    for _ in range(5):
        api.now += OVERLAP
        assert read(api, state).new == []


def test_a_first_run_on_an_empty_stream_starts_from_the_apis_clock_not_ours():
    api = Api()
    state = StreamState()
    fast_clock = T0 + timedelta(minutes=10)
    read_stream(
        lambda index: api.page(index, 10),
        state,
        start=Start("latest"),
        limits=Limits(OVERLAP, 10, 20),
        clock=lambda: fast_clock,
    )
    api.now += timedelta(seconds=30)
    failure = api.add(timedelta(seconds=20))
    assert [e.event_id for e in read(api, state).new] == [failure.event_id]


def test_a_total_size_smaller_than_the_data_is_not_trusted():
    api = Api()
    state = StreamState()
    read(api, state)
    api.now += timedelta(minutes=1)
    added = [api.add().event_id for _ in range(35)]
    lying = api.page

    def page(index: int, size: int) -> EventsPage:
        real = lying(index, size)
        return EventsPage(real.events, index, None, real.server_time, real.size)

    api.page = page  # type: ignore[method-assign]
    assert sorted(e.event_id for e in read(api, state).new) == added


def test_an_earliest_start_beyond_max_pages_says_how_many_it_skipped():
    api = Api()
    for second in range(250):
        api.events.append(Stored(f"old{second:03d}", T0 - timedelta(seconds=second)))
    state = StreamState()
    result = ingest_target(
        lambda stream: lambda index: api.page(index, 100),
        TARGET,
        lambda stream: state,
        start=Start("earliest"),
        limits=Limits(OVERLAP, 100, 2),
        clock=lambda: api.now,
    )
    backlog = [e for e in result.events if e.event_name == BACKLOG]
    assert len(result.events) == 201 and len(backlog) == 1
    assert backlog[0].message.startswith("50 older events not shown")
    assert backlog[0].created_at < min(e.created_at for e in result.events if e not in backlog)


def test_a_count_contradicted_by_expiry_reads_down_to_the_floor_at_once():
    api = Api()
    for second in range(0, 3600, 10):
        api.events.append(Stored(f"old{second:04d}", T0 - timedelta(seconds=second)))
    state = StreamState()
    read(api, state)
    api.now += timedelta(minutes=1)
    api.events = sorted(api.events, key=lambda e: e.created_at)[3:]  # three old ones expire
    fresh = [api.add(), api.add()]
    late = api.add(timedelta(minutes=8))  # deep in the pages: below page 1
    new = {e.event_id for e in read(api, state).new}
    assert new == {fresh[0].event_id, fresh[1].event_id, late.event_id}


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_a_long_backlog_is_read_in_parallel_batches_in_order(order):
    api = Api(order=order)
    state = StreamState()
    read(api, state)
    api.now += timedelta(minutes=1)
    added = [api.add().event_id for _ in range(95)]
    api.requests, api.latency_s = 0, 0.01
    reading = read(api, state, parallel=4)
    assert [e.event_id for e in reading.new] == added  # oldest first, each once
    assert api.requests <= 10 + 2  # 10 pages of new events, plus the probe(s)
    assert api.most_in_flight == 4


def test_a_batch_whose_pages_disagree_on_the_total_is_read_again_one_by_one():
    from flink_alerts.ingest import _Pager

    calls: list[int] = []

    def fetch(index: int) -> EventsPage:
        calls.append(index)
        return EventsPage([], index, 1000 + len(calls), T0, 10)  # an event added per request

    pager = _Pager(fetch, 10, parallel=3)
    pager.prefetch(range(2, 5))
    assert pager.cache == {}  # discarded: the pages may have shifted between the requests
    pager.page(2)
    assert sorted(calls) == [2, 2, 3, 4] and pager.requests == 4
