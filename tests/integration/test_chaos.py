"""The chaos test in CI: seeded, short. `python bench/chaos.py --runs 400` is the long version."""

from __future__ import annotations

import pytest

from bench.chaos import chaos, check

RUNS = 20  # per store: about 20 s each on a 2-core machine


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("store", "seed"), [("file", 20261127), ("oss", 20261128)])
def test_kills_faults_and_overlaps_lose_nothing(store, seed, capsys):
    report = chaos(RUNS, seed, store)
    with capsys.disabled():
        print(f"\n{report.line()}")
    assert report.runs >= RUNS and report.kills > 0 and report.alerts > 0, report.line()
    assert report.store_faults > 0 and report.overlaps > 0, report.line()
    assert check(report) == [], report.line()
