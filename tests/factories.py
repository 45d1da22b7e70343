"""Test data and helpers shared by several test modules."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from flink_alerts.events import Alert, Batch, FlinkEvent, Target

FIRST_EVENT_AT = datetime(2024, 4, 30, 19, 12, 45, tzinfo=timezone.utc)


def failure_batch(
    messages: list[str],
    *,
    receiver: str = "r",
    names: str = "deployment-{}",
    omitted: int = 0,
    test: bool = False,
) -> Batch:
    """One JOB_FAILED alert per message, a second apart, deployments named `names.format(i)`."""
    alerts = tuple(
        Alert(
            event=FlinkEvent(
                event_id=f"ev-{index:04d}",
                event_name="JOB_FAILED",
                created_at=FIRST_EVENT_AT + timedelta(seconds=index),
                workspace="ws",
                namespace="ns",
                deployment_id=f"dep-{index}",
                message=message,
            ),
            deployment_name=names.format(index),
            console_url=f"https://console.example.com/dep-{index}",
        )
        for index, message in enumerate(messages)
    )
    return Batch(receiver, Target("ws", "ns"), alerts, omitted=omitted, test=test)


def race(actions: list[Callable[[], Any]]) -> list[Any]:
    """Run the actions at the same moment, one thread each; their results in order."""
    barrier = threading.Barrier(len(actions))
    results: list[Any] = [None] * len(actions)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = actions[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(actions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results
