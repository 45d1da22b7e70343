"""Where events come from: the Flink OpenAPI, or a file of recorded GetEvents pages (local use).

Both answer the same calls: fetch_new, fetch_latest, list_deployments, iter_events.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from .errors import ConfigError, EventParseError
from .events import FlinkEvent, Target
from .flink.client import FetchResult


class EventSource(Protocol):
    @property
    def api_calls(self) -> int: ...

    def fetch_new(
        self,
        target: Target,
        *,
        floor: datetime | None,
        page_size: int = 100,
        max_pages: int = 20,
        order_hint: str | None = None,
    ) -> FetchResult: ...

    def fetch_latest(
        self, target: Target, page_size: int = 100, order_hint: str | None = None
    ) -> FetchResult: ...

    def list_deployments(self, target: Target) -> dict[str, str]: ...

    def iter_events(
        self, target: Target, *, limit: int, deployment_id: str | None = None
    ) -> list[FlinkEvent]: ...


class ReplaySource:
    """`source: file://events.json`: GetEvents response pages (a page, a list of pages, or
    `{"pages": [...], "deployments": [{"deploymentId", "name"}]}`), re-read on every call."""

    api_calls = 0

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def fetch_new(
        self,
        target: Target,
        *,
        floor: datetime | None,
        page_size: int = 100,
        max_pages: int = 20,
        order_hint: str | None = None,
    ) -> FetchResult:
        events = [e for e in self._events(target) if floor is None or e.created_at >= floor]
        limit = page_size * max_pages
        shown = events[-limit:]
        return FetchResult(
            events=shown,
            order="desc",
            complete=len(shown) == len(events),
            unseen_estimate=len(events) - len(shown),
            total_size=len(events),
            requests=0,
        )

    def fetch_latest(
        self, target: Target, page_size: int = 100, order_hint: str | None = None
    ) -> FetchResult:
        events = self._events(target)[-page_size:]
        return FetchResult(events, "desc", True, 0, len(events), 0)

    def iter_events(
        self, target: Target, *, limit: int, deployment_id: str | None = None
    ) -> list[FlinkEvent]:
        """The newest `limit` events, newest first (for `flink-alerts events`)."""
        events = [
            e for e in self._events(target) if not deployment_id or e.deployment_id == deployment_id
        ]
        return events[::-1][:limit]

    def list_deployments(self, target: Target) -> dict[str, str]:
        document = self._document()
        deployments = document.get("deployments", []) if isinstance(document, dict) else []
        return {str(d.get("deploymentId")): str(d.get("name")) for d in deployments}

    def _events(self, target: Target) -> list[FlinkEvent]:
        """The target's events, oldest first, each id once."""
        unique: dict[str, FlinkEvent] = {}
        for raw in _raw_events(self._document()):
            if raw.get("workspace", target.workspace) != target.workspace:
                continue
            if raw.get("namespace", target.namespace) != target.namespace:
                continue
            try:
                event = FlinkEvent.from_api(
                    raw, workspace=target.workspace, namespace=target.namespace
                )
            except EventParseError as exc:
                raise EventParseError(f"{self.path}: {exc}") from None
            if not target.deployment_ids or event.deployment_id in target.deployment_ids:
                unique[event.event_id] = event
        return sorted(unique.values(), key=lambda event: (event.created_at, event.event_id))

    def _document(self) -> Any:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError("source", f"cannot read {self.path}: {exc.strerror}") from None
        except ValueError as exc:
            raise ConfigError("source", f"{self.path} is not valid JSON: {exc}") from None


def _raw_events(document: Any) -> list[dict[str, Any]]:
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
