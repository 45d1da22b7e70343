"""Function Compute entry point: `handler(event, context)` for the timer trigger.

The timer event is `{"triggerTime", "triggerName", "payload"}`; `payload` may be JSON
`{"targets": ["WORKSPACE/NAMESPACE", ...]}` to run a subset (sharding). Returns the run summary.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))
# flink_alerts and its dependencies, built for the runtime, live in ./python (scripts/build-fc.sh);
# in a checkout, the package is beside this file.
for _path in (os.path.join(_HERE, "python"), _HERE):
    if os.path.isdir(_path) and _path not in sys.path:
        sys.path.insert(0, _path)

from flink_alerts.handler import handle  # noqa: E402


def handler(event: Any, context: Any) -> str:
    started = time.monotonic()
    summary = handle(event, context, started, default_config=Path(_HERE) / "config.yaml")
    return json.dumps(summary, ensure_ascii=False)
