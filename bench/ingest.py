"""Steady-state cost of ingestion per target and run, next to the lower bound.

    python bench/ingest.py [--runs 25] [--json PATH]

A run every (simulated) minute against the local Flink server, file checkpoint: GetEvents calls
and checkpoint store operations per run, for a quiet stream, 1 event / 5 s and 1 event / s, both
orders. Lower bound when nothing is late: 1 call newest-first, 2 oldest-first, plus one per 100
new events; a quiet run reads the store once and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flink_alerts.checkpoint.file import FileBackend  # noqa: E402
from flink_alerts.checkpoint.store import CheckpointStore, RecordStore  # noqa: E402
from flink_alerts.events import Target  # noqa: E402
from flink_alerts.flink.client import FlinkClient  # noqa: E402
from flink_alerts.runner import Run  # noqa: E402
from flink_alerts.settings import Settings  # noqa: E402
from tests.servers.flink_server import FlinkServer  # noqa: E402


class CountingBackend(FileBackend):
    """The file backend, counting what it is asked to do (an instrument, not a fake)."""

    loads = saves = 0

    def load(self, key):
        self.loads += 1
        return super().load(key)

    def save(self, key, body, expected_version):
        self.saves += 1
        return super().save(key, body, expected_version)


def steady(order: str, every_s: int | None, runs: int) -> dict:
    server = FlinkServer(order=order).start()
    try:
        now = datetime.now(timezone.utc)
        history = 3 * 3600 // (every_s or 300)
        server.generate(history, start=now - timedelta(hours=3), step_s=every_s or 300)
        settings = Settings(endpoint=server.url, targets=[server_target(server)])
        target = Target(server.workspace, server.namespace)
        with tempfile.TemporaryDirectory() as directory:
            backend = CountingBackend(directory)
            calls, loads, saves = [], [], []
            for number in range(runs):
                if every_s and number:
                    server.generate(60 // every_s, step_s=every_s)
                backend.loads = backend.saves = 0
                server.reset_counts()
                client = FlinkClient(server.url, server.credentials)
                run = Run(
                    settings,
                    source=client,
                    store=CheckpointStore(backend, local=True),
                    records=RecordStore(backend, local=True),
                    channels={},
                    deadline=time.monotonic() + 240,
                )
                run.run([target])
                if number:  # the first run is the `latest` start
                    calls.append(server.request_count("GetEvents"))
                    loads.append(backend.loads)
                    saves.append(backend.saves)
        new = 60 // every_s if every_s else 0
        bound = (1 if order == "desc" else 2) + new // 100
        return {
            "order": order,
            "stream": f"1 event / {every_s} s" if every_s else "quiet",
            "calls_median": statistics.median(calls),
            "calls_max": max(calls),
            "lower_bound": bound,
            "store_loads": statistics.median(loads),
            "store_writes": statistics.median(saves),
        }
    finally:
        server.stop()


def server_target(server: FlinkServer) -> dict:
    return {"workspace": server.workspace, "namespace": server.namespace}


def steady_ingestion(runs: int = 25) -> list[dict]:
    logging.disable(logging.WARNING)  # "alerts and no receiver configured", once per run
    return [steady(order, every, runs) for order in ("desc", "asc") for every in (None, 5, 1)]


def ingestion_table(rows: list[dict]) -> str:
    lines = [
        "| order | stream | GetEvents calls per run (median / max) | lower bound "
        "| store reads / writes per run (median) |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['order']} | {row['stream']} | {row['calls_median']:g} / {row['calls_max']} "
            f"| {row['lower_bound']} | {row['store_loads']:g} / {row['store_writes']:g} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = steady_ingestion(args.runs)
    print(ingestion_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
