"""Benchmarks: `python bench/run.py` from the repo root prints a Markdown table.

Everything runs against local servers on 127.0.0.1 (the test servers), so numbers measure our
code plus loopback HTTP, not the cloud. Medians of several repetitions.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "functions")]

from bench.discovery import bench_discovery  # noqa: E402
from flink_alerts.events import Alert, Batch, FlinkEvent, Target  # noqa: E402
from flink_alerts.flink.client import FlinkClient  # noqa: E402
from tests.servers.flink_server import FlinkServer  # noqa: E402
from tests.servers.receiver import ReceiverServer  # noqa: E402

Row = tuple[str, str, str]


def median_ms(action: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def bench_import() -> list[Row]:
    probe = (
        "import sys,time; t=time.perf_counter(); sys.path.insert(0,'functions'); import index; "
        "print((time.perf_counter()-t)*1000, "
        "sorted(m for m in ('oss2','tablestore','fc2','numpy') if m in sys.modules))"
    )
    runs = [
        subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True)
        for _ in range(5)
    ]
    times = [float(r.stdout.split()[0]) for r in runs]
    heavy = runs[0].stdout.split(maxsplit=1)[1].strip()
    return [
        (
            "handler import (`import index`)",
            f"{statistics.median(times):.0f} ms",
            f"heavy modules loaded: {heavy}",
        )
    ]


def bench_fetch() -> list[Row]:
    """A run's floor is the watermark minus `overlap_window` (10 min): how many pages that
    re-reads depends on the event rate, so both a realistic and a stormy rate are shown."""
    rows: list[Row] = []
    for order, step_s in (("desc", 60), ("asc", 60), ("desc", 1), ("asc", 1)):
        rows += fetch_rows(order, step_s)
    return rows


def fetch_rows(order: str, step_s: float) -> list[Row]:
    rate = "1 event/min" if step_s == 60 else "1 event/s"
    with FlinkServer(order=order) as server:
        server.generate(10_000, step_s=step_s)
        client = FlinkClient(server.url, server.credentials)
        target = Target(server.workspace, server.namespace)
        newest = max(FlinkEvent.from_api(e).created_at for e in server.events)
        floor = newest - timedelta(minutes=10)
        server.reset_counts()
        ms = median_ms(lambda: client.fetch_new(target, floor=floor), repeat=5)
        calls = server.request_count("GetEvents") / 5
        quiet = (
            f"fetch, 10,000 events at {rate}, nothing new ({order})",
            f"{ms:.1f} ms",
            f"{calls:.0f} GetEvents request(s)",
        )
        server.generate(250, step_s=step_s)
        after = newest + timedelta(milliseconds=1)
        server.reset_counts()
        result = client.fetch_new(target, floor=after)
        calls = server.request_count("GetEvents")
        ms = median_ms(lambda: client.fetch_new(target, floor=after))
        busy = (
            f"fetch, 250 new of 10,250 at {rate} ({order})",
            f"{ms:.1f} ms",
            f"{calls} requests, {len(result.events)} events",
        )
    return [quiet, busy]


def bench_run() -> list[Row]:
    with (
        FlinkServer() as server,
        ReceiverServer() as receiver,
        tempfile.TemporaryDirectory() as tmp,
    ):
        server.generate(2_000)
        config = {
            "endpoint": server.url,
            "targets": [{"workspace": server.workspace, "namespace": server.namespace}],
            "checkpoint": f"file://{tmp}/cp",
            "start_from": "earliest",
            "receivers": [{"name": "hook", "type": "webhook", "url": receiver.url}],
        }
        path = Path(tmp) / "config.yaml"
        path.write_text(json.dumps(config))
        env = {
            **os.environ,
            "ALIBABA_CLOUD_ACCESS_KEY_ID": server.credentials.access_key_id,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": server.credentials.access_key_secret,
            "PYTHONPATH": str(REPO / "functions"),
        }
        command = [
            sys.executable,
            "-m",
            "flink_alerts.cli",
            "--log-level",
            "WARNING",
            "run",
            "--config",
            str(path),
        ]
        rows = []
        for label in (
            "first run, 2,000 new events (286 failures) -> webhook",
            "next run, nothing new",
        ):
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            started = time.perf_counter()
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            wall = (time.perf_counter() - started) * 1000
            summary = json.loads(done.stdout.strip().splitlines()[-1])
            peak = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024
            rows.append(
                (
                    f"`flink-alerts run`: {label}",
                    f"{wall:.0f} ms wall ({summary['duration_ms']} ms in run)",
                    f"peak RSS ≤ {peak:.0f} MiB, {summary['api_calls']} API calls, {summary['sent']} sent",
                )
            )
        return rows


def bench_render() -> list[Row]:
    from flink_alerts.channels import make_channel
    from flink_alerts.render import Renderer
    from flink_alerts.settings import DingTalkReceiver, SlackReceiver

    events = [
        FlinkEvent(
            f"e{i}",
            "JOB_FAILED",
            FlinkEvent.from_api({"eventId": "x", "createdAt": 1764115200000 + i}).created_at,
            "ws",
            "ns",
            "dep",
            "job",
            "java.lang.OutOfMemoryError: Java heap space\n\tat x.y(Z.java:1)" * 80,
        )
        for i in range(500)
    ]
    batch = Batch("r", Target("ws", "ns"), tuple(Alert(e) for e in events))
    renderer = Renderer()
    rows = []
    for config in (
        DingTalkReceiver(
            name="r", type="dingtalk", webhook="https://oapi.dingtalk.com/robot/send?access_token=x"
        ),
        SlackReceiver(name="r", type="slack", webhook="https://hooks.slack.com/services/x"),
    ):
        channel = make_channel(config, renderer)
        messages = channel.build(batch)
        size = max(len(json.dumps(m.payload, ensure_ascii=False).encode()) for m in messages)
        ms = median_ms(lambda channel=channel: channel.build(batch), repeat=3)
        rows.append(
            (
                f"render 500 events, 5 KB traces each ({config.type})",
                f"{ms:.0f} ms",
                f"{len(messages)} message(s), largest {size:,} bytes",
            )
        )
    return rows


def main() -> None:
    rows = bench_import() + bench_fetch() + bench_run() + bench_render() + bench_discovery()
    print("| benchmark | time | notes |")
    print("|---|---|---|")
    for name, value, notes in rows:
        print(f"| {name} | {value} | {notes} |")


if __name__ == "__main__":
    main()
