"""Function Compute entry point: `handler(event, context)` for the timer trigger.

The timer event is `{"triggerTime", "triggerName", "payload"}`; `payload` may be JSON
`{"targets": ["WORKSPACE/NAMESPACE", ...]}` to run a subset (sharding). Returns the run summary.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))
# Third-party packages built for the runtime live in ./python (see the README's deployment guide).
for _path in (os.path.join(_HERE, "python"), _HERE):
    if os.path.isdir(_path) and _path not in sys.path:
        sys.path.insert(0, _path)

from flink_alerts.handler import handle  # noqa: E402


def handler(event: Any, context: Any) -> str:
    return json.dumps(handle(event, context, time.monotonic()), ensure_ascii=False)
