"""Chaos: `python bench/chaos.py [--runs 400] [--seed 7] [--store file|oss|both]`.

`flink-alerts run` processes, one timer minute apart (their clocks shifted, see clock_shift.py),
against local servers: runs killed with SIGKILL at random points, receivers failing at random
(5xx, resets, hangs, slow answers), API throttling, checkpoint store errors and overlapping runs.
Then, with everything healthy, runs until the outbox is empty, and counts: every generated alert
must have reached each receiver (lost = 0); a message may repeat only where a run was interrupted
between a send and its commit (a kill or a store error), at most one message per interruption.

The CLI is a black box here: alerts are recognised by event id in the received payloads.
tests/integration/test_chaos.py runs a short, seeded version of this in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "functions")]

from tests.servers.flaky_receiver import FlakyReceiver  # noqa: E402
from tests.servers.flink_server import FlinkServer  # noqa: E402
from tests.servers.oss_server import OssTestServer  # noqa: E402

MINUTE_S = 60.0  # simulated time between two timer runs
KILL_RATE = 0.4  # share of runs killed at a random point (most runs last about a second)
OVERLAP_RATE = 0.15  # share of timer minutes that start two runs at once
THROTTLE_RATE = 0.2  # share of runs whose first GetEvents calls are throttled
STORE_FAULT_RATE = 0.2  # file: share of runs whose directory vanishes for a moment
OSS_FAULT_RATE = 0.05  # oss: share of requests answered 503
RUN_TIMEOUT_S = 60.0
HEALTHY_RUNS = 10  # at most this many runs to drain the outbox at the end


@dataclass
class Report:
    store: str
    seed: int
    runs: int = 0
    kills: int = 0
    store_faults: int = 0
    overlaps: int = 0
    alerts: int = 0
    deliveries: int = 0
    duplicates: int = 0  # messages that repeated an alert the receiver already had
    lost: int = 0  # (alert, receiver) pairs never delivered
    failures: list[str] = field(default_factory=list)

    @property
    def interruptions(self) -> int:
        return self.kills + self.store_faults

    def line(self) -> str:
        return (
            f"chaos {self.store} seed={self.seed}: runs {self.runs}, kills {self.kills}, "
            f"store faults {self.store_faults}, overlaps {self.overlaps}, alerts {self.alerts}, "
            f"deliveries {self.deliveries}, duplicates {self.duplicates}, lost {self.lost}"
        )


class Chaos:
    """The servers, the config and the simulated clock of one chaos session."""

    def __init__(self, stack: ExitStack, folder: Path, store: str, seed: int) -> None:
        self.rng = random.Random(seed)
        self.report = Report(store, seed)
        self.folder = folder
        self.flink = stack.enter_context(FlinkServer())
        self.receivers = [stack.enter_context(FlakyReceiver(seed + i)) for i in range(2)]
        self.oss = stack.enter_context(OssTestServer()) if store == "oss" else None
        self.store_dir = folder / "checkpoints"
        self.config = self._write_config()
        self.minute = 0
        self.alert_ids: list[str] = []
        self.kill_timers: list[threading.Timer] = []
        self.store_fault: threading.Timer | None = None
        creds = self.flink.credentials
        self.env = {
            **os.environ,
            "ALIBABA_CLOUD_ACCESS_KEY_ID": creds.access_key_id,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": creds.access_key_secret,
        }

    def _write_config(self) -> Path:
        if self.oss:
            checkpoint = f"oss://{self.oss.create_bucket()}/chaos?endpoint={self.oss.endpoint}"
        else:
            checkpoint = f"file://{self.store_dir}"
        config = {
            "endpoint": self.flink.url,
            "targets": [{"workspace": self.flink.workspace, "namespace": self.flink.namespace}],
            "checkpoint": checkpoint,
            "start_from": "earliest",
            "timeout_s": 2,
            # The lease of a killed run (deadline + 30 s) has expired by the next timer minute.
            "deadline_s": 20,
            # Each failure its own incident, so none is folded into another's digest: the test
            # checks that every event reaches every receiver.
            "rules": [
                {"name": "each", "match": {"event_name": "JOB_FAILED"}, "fingerprint": ["event"]}
            ],
            "receivers": [
                {"name": f"r{i}", "type": "webhook", "url": receiver.url}
                for i, receiver in enumerate(self.receivers)
            ],
            "delivery": {
                "initial_backoff": "0s",
                "max_backoff": "0s",
                "max_attempts": 1000,
                "max_age": "30d",
                "timeout_s": 1,
            },
        }
        path = self.folder / "config.json"
        path.write_text(json.dumps(config))
        return path

    # -- one timer minute ------------------------------------------------------------------

    def chaotic_minute(self) -> None:
        self._new_failures()
        if self.rng.random() < THROTTLE_RATE:
            status = self.rng.choice([400, 429])  # Throttling.User as a 400 or a 429
            times = self.rng.randint(1, 2)
            self.flink.inject("throttle", times=times, status=status, action="GetEvents")
        count = 2 if self.rng.random() < OVERLAP_RATE else 1
        self.report.overlaps += count - 1
        processes = [self._start() for _ in range(count)]
        for process in processes:
            if self.rng.random() < KILL_RATE:
                self._kill_later(process, self.rng.uniform(0.1, 1.0))
        if not self.oss and self.rng.random() < STORE_FAULT_RATE:
            self._break_store_later(self.rng.uniform(0.2, 1.0))
        self._wait(processes)

    def healthy_minute(self) -> dict[str, Any] | None:
        """One run with nothing failing; its summary, if it completed."""
        process = self._start()
        self._wait([process])
        out = process.stdout.read() if process.stdout else ""
        lines = out.strip().splitlines()
        return json.loads(lines[-1]) if process.returncode == 0 and lines else None

    def _new_failures(self) -> None:
        now = datetime.now(timezone.utc) + timedelta(seconds=self.minute * MINUTE_S)
        events = []
        for _ in range(self.rng.randint(0, 4)):
            event_id = f"chaos-{len(self.alert_ids) + 1:05d}"
            self.alert_ids.append(event_id)
            events.append(
                {
                    "eventId": event_id,
                    "eventName": "JOB_FAILED",
                    "createdAt": now - timedelta(seconds=self.rng.uniform(0, 20)),
                    "deploymentId": "dep-chaos",
                    "jobId": "job-chaos",
                    "message": f"Job failed: java.lang.RuntimeException: chaos {event_id}",
                }
            )
        self.flink.add_events(events)

    def _start(self) -> subprocess.Popen[str]:
        self.report.runs += 1
        offset = self.minute * MINUTE_S
        self.flink.clock_offset_s = offset  # the API's clock agrees with the runs' clock
        command = [sys.executable, str(REPO / "bench" / "clock_shift.py"), str(offset)]
        return subprocess.Popen(
            [*command, "run", "--config", str(self.config)],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def _kill_later(self, process: subprocess.Popen[str], delay_s: float) -> None:
        def kill() -> None:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                self.report.kills += 1

        timer = threading.Timer(delay_s, kill)
        self.kill_timers.append(timer)
        timer.start()

    def _break_store_later(self, delay_s: float) -> None:
        """The checkpoint directory vanishes for a moment (a file in its place), mid-run."""

        def vanish() -> None:
            away = self.store_dir.with_name("checkpoints.away")
            existed = self.store_dir.is_dir()
            if existed:
                self.store_dir.rename(away)
            self.store_dir.write_text("not a directory")
            time.sleep(0.3)
            self.store_dir.unlink()
            if existed:
                away.rename(self.store_dir)
            self.report.store_faults += 1

        self.store_fault = threading.Timer(delay_s, vanish)
        self.store_fault.start()

    def _wait(self, processes: list[subprocess.Popen[str]]) -> None:
        for process in processes:
            try:
                process.wait(timeout=RUN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                self.report.failures.append(f"minute {self.minute}: a run hung")
        for timer in self.kill_timers:  # the runs are over: kills not yet due are moot
            timer.cancel()
            timer.join()
        self.kill_timers.clear()
        if self.store_fault:  # a store fault still happens, between runs if they were quick
            self.store_fault.join()
            self.store_fault = None
        self.minute += 1

    # -- the end -----------------------------------------------------------------------------

    def settle(self) -> None:
        """Everything healthy: run until a run completes with an empty outbox."""
        for receiver in self.receivers:
            receiver.healthy = True
        if self.oss:
            self.oss.fail = None
        for _ in range(HEALTHY_RUNS):
            summary = self.healthy_minute()
            if summary and summary["pending"] == 0 and summary["skipped"] == 0:
                return
        self.report.failures.append(f"the outbox did not drain in {HEALTHY_RUNS} healthy runs")

    def count(self) -> Report:
        report = self.report
        report.alerts = len(self.alert_ids)
        for receiver in self.receivers:
            seen: Counter[str] = Counter()
            for body in receiver.bodies:
                ids = [alert.get("eventId") for alert in body.get("alerts", [])]
                report.duplicates += any(seen[i] for i in ids)
                seen.update(ids)
            report.deliveries += sum(seen[i] for i in self.alert_ids)
            report.lost += sum(1 for i in self.alert_ids if not seen[i])
        return report


def chaos(runs: int, seed: int, store: str) -> Report:
    """`runs` chaotic timer minutes, then healthy ones until the outbox drains; the counts."""
    with tempfile.TemporaryDirectory(prefix="chaos-") as folder, ExitStack() as stack:
        session = Chaos(stack, Path(folder), store, seed)
        if session.oss:
            faults = random.Random(seed)
            session.oss.fail = lambda method: _count_fault(session, faults)
        while session.report.runs < runs:
            session.chaotic_minute()
        session.settle()
        shutil.rmtree(Path(folder) / "checkpoints.away", ignore_errors=True)
        return session.count()


def _count_fault(session: Chaos, rng: random.Random) -> bool:
    if rng.random() < OSS_FAULT_RATE:
        session.report.store_faults += 1
        return True
    return False


def check(report: Report) -> list[str]:
    """What went wrong, if anything: lost alerts, too many repeats, hung or undrained runs."""
    problems = list(report.failures)
    if report.lost:
        problems.append(f"{report.lost} alert deliveries lost")
    if report.duplicates > report.interruptions:
        problems.append(
            f"{report.duplicates} repeated messages for {report.interruptions} interruptions"
        )
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--store", choices=["file", "oss", "both"], default="both")
    args = parser.parse_args()
    problems = []
    for store in ["file", "oss"] if args.store == "both" else [args.store]:
        report = chaos(args.runs, args.seed, store)
        print(report.line(), flush=True)
        problems += [f"{store}: {problem}" for problem in check(report)]
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
