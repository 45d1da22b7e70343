"""`python bench/clock_shift.py SECONDS ARGS...`: the flink-alerts CLI with its clock SECONDS ahead.

The chaos test's runs are timer minutes apart, as in Function Compute, without waiting for them:
the lease of a killed run has expired by the next run, as it would have a minute later.
"""

from __future__ import annotations

import sys
import time

import time_machine

from flink_alerts.cli import main

if __name__ == "__main__":
    with time_machine.travel(time.time() + float(sys.argv[1]), tick=True):
        code = main(sys.argv[2:])
    sys.exit(code)
