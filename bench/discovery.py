"""Discovery cost: `python bench/discovery.py` (also part of bench/run.py's table).

Shows that resolving the fleet costs at most one DescribeInstances per region and one
DescribeNamespaces per workspace per `refresh`, and nothing in between (the listing is read from
the checkpoint store), against the local foasconsole server on 127.0.0.1.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "functions")]

from flink_alerts.checkpoint.file import FileBackend  # noqa: E402
from flink_alerts.checkpoint.store import NamedRecord  # noqa: E402
from flink_alerts.fleet.clients import Accounts  # noqa: E402
from flink_alerts.fleet.discovery import RECORD_NAME, Discovery  # noqa: E402
from flink_alerts.settings import Settings  # noqa: E402
from tests.servers.rpc_servers import FoasconsoleServer  # noqa: E402

Row = tuple[str, str, str]
REGIONS, WORKSPACES, NAMESPACES = ["cn-hangzhou", "cn-shanghai", "cn-beijing"], 4, 5
RESOLVES_PER_REFRESH = 10


def bench_discovery() -> list[Row]:
    with FoasconsoleServer() as console, tempfile.TemporaryDirectory() as directory:
        for region in REGIONS:
            for index in range(WORKSPACES):
                names = [f"ns-{n}" for n in range(NAMESPACES)]
                console.add_workspace(region, f"f-{region}-{index}", f"team-{index}", names)
        settings = Settings(discover={"regions": REGIONS, "endpoint": console.url})
        clock = [datetime.now(timezone.utc)]
        discovery = Discovery(
            settings,
            NamedRecord(FileBackend(directory), RECORD_NAME),
            Accounts(settings, console.credentials).foasconsole,
            clock=lambda: clock[0],
        )
        size = f"{len(REGIONS)} regions × {WORKSPACES} workspaces × {NAMESPACES} namespaces"
        rows = []
        for label in ("first run", "after `refresh` (10 min)"):
            console.reset_counts()
            rows.append(_timed(f"discovery, {size}: {label}", discovery, console, 1))
            rows.append(
                _timed(
                    f"discovery, next {RESOLVES_PER_REFRESH} runs within `refresh`",
                    discovery,
                    console,
                    RESOLVES_PER_REFRESH,
                )
            )
            _check_bound(console)
            clock[0] += timedelta(seconds=settings.discover.refresh)
        return rows


def _timed(name: str, discovery: Discovery, console: FoasconsoleServer, repeat: int) -> Row:
    before = _calls(console)
    started = time.perf_counter()
    for _ in range(repeat):
        targets = len(discovery.resolve().targets)
    elapsed_ms = (time.perf_counter() - started) * 1000 / repeat
    instances, namespaces = (now - then for now, then in zip(_calls(console), before, strict=True))
    notes = f"{targets} targets; {instances} DescribeInstances, {namespaces} DescribeNamespaces"
    return name, f"{elapsed_ms:.1f} ms per run", notes


def _calls(console: FoasconsoleServer) -> tuple[int, int]:
    return console.request_count("DescribeInstances"), console.request_count("DescribeNamespaces")


def _check_bound(console: FoasconsoleServer) -> None:
    """Per refresh: ≤ 1 DescribeInstances per region, ≤ 1 DescribeNamespaces per workspace."""
    instances, namespaces = _calls(console)
    if instances > len(REGIONS) or namespaces > len(REGIONS) * WORKSPACES:
        raise SystemExit(f"discovery cost too much: {instances} + {namespaces} calls per refresh")


def main() -> None:
    print("| benchmark | time | notes |")
    print("|---|---|---|")
    for name, value, notes in bench_discovery():
        print(f"| {name} | {value} | {notes} |")


if __name__ == "__main__":
    main()
