"""Which events are new: reading GetEvents exactly, at the lowest cost. Pure over a page fetcher.

GetEvents has offset pages only: no time filter, no cursor, an undocumented order. Each stream
keeps an explicit boundary (`StreamState.floor`): every event created before it was handled or
deliberately skipped, so nothing below it is ever new again. Above it, events are compared by id.

Late events. An event may become visible up to `overlap_window` after its `createdAt` (ingestion
delay plus clock skew between this function and the API). So an event that was not visible at a
read made at API time `t` was created after `t - overlap`. A read that goes all the way down to
the floor (a *sweep*) therefore may move the floor up to `t - overlap`.

Cost. Sweeping every run would re-read the whole late window. Instead, totalSize growth since
the previous read says how many events became visible: when the new events found (newest first)
account for all of it, the read stops there: 1 call newest-first (2 oldest-first) when nothing
happened, plus one per 100 new events. Expiry of old events or deletions can hide a late event
from the count, so a sweep still runs every `SWEEP_EVERY` overlap windows, and at once when the
count is contradicted (more new events found than totalSize grew) or cannot be trusted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

from .checkpoint.model import StreamState
from .events import UNREADABLE, EventsPage, FlinkEvent, Target
from .units import Start

BACKLOG = "EVENTS_NOT_SHOWN"
SWEEP_EVERY = 2  # overlap windows between two sweeps
# Oldest-first with no usable totalSize means reading forward to the end; this bounds it.
_FORWARD_CAP = 1000
UNREADABLE_KEPT = timedelta(days=1)
_TICK = timedelta(microseconds=1)

Fetch = Callable[[int], EventsPage]


@dataclass(frozen=True)
class Limits:
    overlap: timedelta
    page_size: int = 100
    max_pages: int = 20
    parallel: int = 1  # pages read at once when a walk knows it needs several


@dataclass
class Reading:
    """One stream's read: its new events (oldest first) and what the read cost."""

    new: list[FlinkEvent]
    fetched: int
    requests: int
    skipped: int = 0  # new events deliberately not read (beyond max_pages)
    skipped_exact: bool = True
    quiet_start: bool = False
    changed: bool = False  # the stream state must be saved
    read_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


def read_stream(
    fetch: Fetch,
    state: StreamState,
    *,
    start: Start,
    limits: Limits,
    clock: Callable[[], datetime],
) -> Reading:
    """Read one stream's new events and move `state` on (in memory; the caller saves it)."""
    with _Pager(fetch, limits.page_size, limits.parallel) as pager:
        first = pager.page(1)
        read_at = first.server_time or clock()
        order = _learn_order(pager, first, state.order)
        plan = _plan(state, start, limits.overlap, read_at, first.total)
        walk = _walk(pager, order, plan, state, limits.max_pages)
    events = _unique(walk.events)
    reading = Reading([], len(events), pager.requests, read_at=read_at)
    before = (state.total, state.order, len(state.seen))
    if plan.quiet:
        reading.quiet_start = True
        _remember(state, [e for e in events if plan.floor is None or e.created_at >= plan.floor])
    else:
        reading.new = [e for e in events if _is_new(state, plan.floor, e)]
        _remember(state, reading.new)
    _refresh_unreadable(state, events, read_at)
    if walk.cut and not plan.quiet:
        reading.skipped, reading.skipped_exact = _skipped(plan, walk, reading)
    if walk.cut:
        oldest = min((e.created_at for e in events if e.event_name != UNREADABLE), default=None)
        _raise_floor(state, (oldest + _TICK) if oldest else read_at - limits.overlap, read_at)
    elif walk.swept:
        _raise_floor(state, read_at - limits.overlap, read_at)
    state.total = walk.newest_total
    state.order = order or state.order
    first_read = plan.first
    reading.changed = bool(reading.new or walk.cut or first_read) or before != (
        state.total,
        state.order,
        len(state.seen),
    )
    reading.new = [_flag_future(e, read_at, limits.overlap) for e in reading.new]
    return reading


# -- planning ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    floor: datetime | None  # events below it are not new
    expected: int | None  # events that became visible since the last read (None: unknown)
    sweep: bool  # read down to the floor whatever the count says
    first: bool
    quiet: bool  # a `latest` start: remember what is there, alert on nothing


def _plan(
    state: StreamState, start: Start, overlap: timedelta, read_at: datetime, total: int | None
) -> _Plan:
    if state.floor is None:
        if start.mode == "latest":
            return _Plan(read_at - overlap, None, True, True, True)
        floor = None if start.mode == "earliest" else read_at - start.lookback
        return _Plan(floor, None, True, True, False)
    expected = None if total is None or state.total is None else total - state.total
    due = state.swept_at is None or read_at - state.swept_at >= overlap * SWEEP_EVERY
    return _Plan(state.floor, expected, due or expected is None, False, False)


def _learn_order(pager: _Pager, first: EventsPage, known: str | None) -> str | None:
    """The order of `data`, from page 1 alone when it can tell, else page 1 against the last."""
    seen = _page_order(first.events)
    if seen or first.last_page(pager.page_size) <= 1:
        return seen or known
    if known == "desc":
        return known  # trusted as is: checking it would cost a call every run
    return _pages_order(first, pager.page(first.last_page(pager.page_size))) or known


# -- walking pages, newest first ---------------------------------------------------------


@dataclass
class _Walk:
    events: list[FlinkEvent] = field(default_factory=list)
    pages: int = 0
    swept: bool = False  # reached the floor (or the oldest event)
    cut: bool = False  # stopped by max_pages
    newest_total: int | None = None
    remaining: int | None = None  # events older than the last page read, when known


def _walk(
    pager: _Pager, order: str | None, plan: _Plan, state: StreamState, max_pages: int
) -> _Walk:
    walk = _Walk()
    found: set[str] = set()
    sweep = plan.sweep

    def pages_ahead(page: EventsPage) -> int:
        """How many more pages this walk will need, as far as one can tell (for batching)."""
        room = max_pages - walk.pages
        if plan.expected is not None and not sweep:
            return min(room, -(-(plan.expected - len(found)) // pager.page_size))
        if plan.floor is None:
            return room
        return min(room, _pages_to_floor(page, plan.floor))

    for page, is_oldest in _newest_first(pager, order, pages_ahead):
        if walk.pages == 0:
            walk.newest_total = page.total
        walk.pages += 1
        walk.events.extend(page.events)
        found.update(e.event_id for e in page.events if _is_new(state, plan.floor, e))
        if plan.expected is not None and len(found) > plan.expected:
            sweep = True  # the count is contradicted: something expired or was deleted
        reached_floor = plan.floor is not None and any(
            e.created_at < plan.floor for e in page.events if e.event_name != UNREADABLE
        )
        if is_oldest or reached_floor:
            walk.swept = True  # everything down to the floor was read
            return walk
        if not sweep and plan.expected is not None and len(found) >= plan.expected:
            return walk
        if walk.pages >= max_pages:
            walk.cut = True
            walk.remaining = _older_than(page, order, pager.page_size)
            return walk
    return walk


def _pages_to_floor(page: EventsPage, floor: datetime) -> int:
    """Pages between this one and the floor, guessed from the time this page spans."""
    times = [e.created_at for e in page.events if e.event_name != UNREADABLE]
    if len(times) < 2:
        return 1
    span = (max(times) - min(times)).total_seconds()
    left = (min(times) - floor).total_seconds()
    if span <= 0:
        return 1
    return max(1, -(-int(left) // int(span or 1)))


def _newest_first(
    pager: _Pager, order: str | None, ahead: Callable[[EventsPage], int] = lambda page: 1
) -> Iterator[tuple[EventsPage, bool]]:
    """Pages from the newest events to the oldest, each with "is it the oldest page".
    `ahead(page)` says how many more pages the caller expects to need: those are read as one
    batch, in parallel."""
    first = pager.page(1)
    if order == "asc":
        yield from _oldest_first_backwards(pager, first, ahead)
        return
    page = first
    while True:
        oldest = page.is_last(pager.page_size)
        yield page, oldest
        if oldest:
            return
        wanted = min(ahead(page), page.last_page(pager.page_size) - page.index)
        pager.prefetch(range(page.index + 1, page.index + 1 + wanted))
        page = pager.page(page.index + 1)


def _oldest_first_backwards(
    pager: _Pager, first: EventsPage, ahead: Callable[[EventsPage], int]
) -> Iterator[tuple[EventsPage, bool]]:
    if first.total is None:  # no usable totalSize: read forward to the end, newest last
        pages = [first]
        while not pages[-1].is_last(pager.page_size) and len(pages) < _FORWARD_CAP:
            pages.append(pager.page(pages[-1].index + 1))
        for page in reversed(pages):
            yield page, page.index == 1
        return
    index = first.last_page(pager.page_size)
    if index > 1:
        del pager.cache[1]  # read again when the walk gets there: expiry shifts events into it
    page = pager.page(index) if index > 1 else first
    # Events added meanwhile may have opened a later page: start from the newest one.
    while page.total is not None and page.last_page(pager.page_size) > page.index:
        page = pager.page(page.last_page(pager.page_size))
    while True:
        yield page, page.index <= 1
        if page.index <= 1:
            return
        wanted = min(ahead(page), page.index - 1)
        pager.prefetch(range(page.index - 1, page.index - 1 - wanted, -1))
        page = pager.page(page.index - 1)


def newest(fetch: Fetch, page_size: int, limit: int) -> list[FlinkEvent]:
    """The newest `limit` events, newest first (for `flink-alerts events`)."""
    pager = _Pager(fetch, page_size)
    order = _learn_order(pager, pager.page(1), None)
    collected: list[FlinkEvent] = []
    for page, _ in _newest_first(pager, order):
        collected.extend(page.events)
        if len({e.event_id for e in collected}) >= limit:
            break
    return _unique(collected)[::-1][:limit]


def _older_than(page: EventsPage, order: str | None, page_size: int) -> int | None:
    if order == "asc":
        return (page.index - 1) * page_size
    if page.total is None:
        return None
    return max(0, page.total - page.index * page_size)


class _Pager:
    """Reads and counts pages. A batch is read in parallel and kept only if every page of it
    reports the same totalSize: then no event was added or expired between them, and the batch
    is as good as one read; otherwise its pages are read again one by one. The threads that read
    batches are started once per pager (a backlog reads hundreds of batches), and stopped when
    the pager is used in a `with` block and that ends."""

    def __init__(self, fetch: Fetch, page_size: int, parallel: int = 1) -> None:
        self.fetch = fetch
        self.page_size = page_size
        self.parallel = parallel
        self.requests = 0
        self.cache: dict[int, EventsPage] = {}
        self._pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> _Pager:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    def page(self, index: int) -> EventsPage:
        if index not in self.cache:
            self.requests += 1
            self.cache[index] = self.fetch(index)
        return self.cache[index]

    def prefetch(self, indices: range) -> None:
        wanted = [index for index in indices if index not in self.cache][: self.parallel]
        if len(wanted) < 2:
            return
        self.requests += len(wanted)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.parallel, thread_name_prefix="pages")
        pages = list(self._pool.map(self.fetch, wanted))
        if len({page.total for page in pages}) == 1 and pages[0].total is not None:
            self.cache.update(zip(wanted, pages, strict=True))


# -- updating the state ------------------------------------------------------------------


def _is_new(state: StreamState, floor: datetime | None, event: FlinkEvent) -> bool:
    if event.event_id in state.seen:
        return False
    return event.event_name == UNREADABLE or floor is None or event.created_at >= floor


def _remember(state: StreamState, events: list[FlinkEvent]) -> None:
    for event in events:
        state.seen[event.event_id] = event.created_at


def _refresh_unreadable(state: StreamState, events: list[FlinkEvent], read_at: datetime) -> None:
    """An unreadable event has no usable time: keep its id for a while after reads last met it
    (page boundaries shift, so a sweep may meet it again after one that did not)."""
    for event in events:
        if event.event_name == UNREADABLE and event.event_id in state.seen:
            state.seen[event.event_id] = read_at + UNREADABLE_KEPT


def _raise_floor(state: StreamState, floor: datetime, read_at: datetime) -> None:
    if state.floor is None or floor > state.floor:
        state.floor = floor
    state.swept_at = read_at
    state.seen = {key: at for key, at in state.seen.items() if at >= state.floor}


def _skipped(plan: _Plan, walk: _Walk, reading: Reading) -> tuple[int, bool]:
    """How many new events the cut left unread, and whether that number is exact."""
    if plan.expected is not None:
        return max(plan.expected - len(reading.new), 0), True
    if walk.remaining is None:
        return 1, False
    return walk.remaining, plan.floor is None


def _flag_future(event: FlinkEvent, read_at: datetime, overlap: timedelta) -> FlinkEvent:
    ahead = event.created_at - read_at
    if ahead <= overlap or event.note:
        return event
    note = f"createdAt is {_span(ahead)} ahead of the API's clock"
    return replace(event, note=note)


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 86400:
        return f"{seconds // 86400} d"
    return (
        f"{seconds // 3600} h {seconds % 3600 // 60} min"
        if seconds >= 3600
        else f"{seconds // 60} min"
    )


def _unique(events: list[FlinkEvent]) -> list[FlinkEvent]:
    unique: dict[str, FlinkEvent] = {}
    for event in events:
        unique.setdefault(event.event_id, event)
    return sorted(unique.values(), key=lambda e: (e.created_at, e.event_id))


def _page_order(events: list[FlinkEvent]) -> str | None:
    times = [e.created_at for e in events if e.event_name != UNREADABLE]
    if len(times) < 2 or times[0] == times[-1]:
        return None
    return "desc" if times[0] > times[-1] else "asc"


def _pages_order(first: EventsPage, tail: EventsPage) -> str | None:
    head = [e.created_at for e in first.events if e.event_name != UNREADABLE]
    end = [e.created_at for e in tail.events if e.event_name != UNREADABLE]
    if not head or not end:
        return None
    if min(head) >= max(end) and max(head) > min(end):
        return "desc"
    if max(head) <= min(end) and min(head) < max(end):
        return "asc"
    return None


# -- a target: its streams, merged -------------------------------------------------------


@dataclass
class Ingested:
    """A target's new events, oldest first, with synthetic ones for backlogs and odd events."""

    events: list[FlinkEvent]
    fetched: int = 0
    requests: int = 0
    quiet_start: bool = False
    changed: bool = False


def backlog_event(target: Target, stream: str, reading: Reading, max_pages: int) -> FlinkEvent:
    """One event standing for the new events beyond `max_pages`, instead of a flood."""
    oldest = min((e.created_at for e in reading.new), default=reading.read_at)
    count = f"{reading.skipped}" if reading.skipped_exact else f"up to {reading.skipped}"
    if not reading.skipped_exact and reading.skipped <= 1:
        count = "more"
    where = f" of deployment {stream}" if stream else ""
    return FlinkEvent(
        event_id=f"backlog:{target.name}:{stream}:{reading.read_at.isoformat()}",
        event_name=BACKLOG,
        created_at=oldest - timedelta(milliseconds=1),  # sorts before the events it precedes
        workspace=target.workspace,
        namespace=target.namespace,
        deployment_id=stream,
        message=(
            f"{count} older events{where} not shown: more new events than max_pages="
            f"{max_pages} pages; look at the Flink console for the full history"
        ),
    )


def ingest_target(
    fetch_for: Callable[[str], Fetch],
    target: Target,
    streams: Callable[[str], StreamState],
    *,
    start: Start,
    limits: Limits,
    clock: Callable[[], datetime],
) -> Ingested:
    """Read every stream of the target (the whole namespace, or each of its deployment ids)."""
    result = Ingested([])
    for stream in target.deployment_ids or ("",):
        reading = read_stream(
            fetch_for(stream), streams(stream), start=start, limits=limits, clock=clock
        )
        result.events.extend(reading.new)
        if reading.skipped:
            result.events.append(backlog_event(target, stream, reading, limits.max_pages))
        result.fetched += reading.fetched
        result.requests += reading.requests
        result.quiet_start = result.quiet_start or reading.quiet_start
        result.changed = result.changed or reading.changed
    result.events = _unique(result.events)
    return result
