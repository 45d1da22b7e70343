"""Where events come from: the Flink OpenAPI, or a file of recorded GetEvents pages (local use).

Both answer the same calls: get_events_page, list_deployments, iter_events.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from .errors import ConfigError
from .events import EventsPage, FlinkEvent, Target, parse_event


class EventSource(Protocol):
    @property
    def api_calls(self) -> int: ...

    def get_events_page(
        self, target: Target, page_index: int, page_size: int, deployment_id: str | None = None
    ) -> EventsPage: ...

    def list_deployments(self, target: Target) -> dict[str, str]: ...

    def iter_events(
        self, target: Target, *, limit: int, deployment_id: str | None = None
    ) -> list[FlinkEvent]: ...


class ReplaySource:
    """`source: file://events.json`: GetEvents response pages (a page, a list of pages, or
    `{"pages": [...], "deployments": [{"deploymentId", "name"}]}`), re-read on every call and
    served newest first, like the API."""

    api_calls = 0

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def get_events_page(
        self, target: Target, page_index: int, page_size: int, deployment_id: str | None = None
    ) -> EventsPage:
        events = self._events(target, deployment_id)[::-1]
        start = (page_index - 1) * page_size
        page = events[start : start + page_size]
        return EventsPage(page, page_index, len(events), datetime.now(timezone.utc), len(page))

    def iter_events(
        self, target: Target, *, limit: int, deployment_id: str | None = None
    ) -> list[FlinkEvent]:
        """The newest `limit` events, newest first (for `flink-alerts events`)."""
        return self._events(target, deployment_id)[::-1][:limit]

    def list_deployments(self, target: Target) -> dict[str, str]:
        document = self._document()
        deployments = document.get("deployments", []) if isinstance(document, dict) else []
        return {str(d.get("deploymentId")): str(d.get("name")) for d in deployments}

    def _events(self, target: Target, deployment_id: str | None) -> list[FlinkEvent]:
        """The target's events, oldest first, each id once."""
        unique: dict[str, FlinkEvent] = {}
        now = datetime.now(timezone.utc)
        for raw in raw_events(self._document()):
            if raw.get("workspace", target.workspace) != target.workspace:
                continue
            if raw.get("namespace", target.namespace) != target.namespace:
                continue
            event = parse_event(raw, target, now)
            if not deployment_id or event.deployment_id == deployment_id:
                unique[event.event_id] = event
        return sorted(unique.values(), key=lambda event: (event.created_at, event.event_id))

    def _document(self) -> Any:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError("source", f"cannot read {self.path}: {exc.strerror}") from None
        except ValueError as exc:
            raise ConfigError("source", f"{self.path} is not valid JSON: {exc}") from None


def raw_events(document: Any) -> list[dict[str, Any]]:
    pages = document.get("pages", [document]) if isinstance(document, dict) else document
    if not isinstance(pages, list):
        return []
    events: list[dict[str, Any]] = []
    for page in pages:
        data = page.get("data", []) if isinstance(page, dict) else []
        events.extend(item for item in data if isinstance(item, dict))
    return events


def replay_path(source: str) -> str:
    if not source.startswith("file://"):
        raise ConfigError("source", "only file://PATH (recorded GetEvents pages) is supported")
    return source[len("file://") :]
