"""Sharding and the worker's event: pure, no server."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flink_alerts.fanout import split_into_shards, worker_event
from flink_alerts.handler import parse_timer_event

names = st.lists(st.text(min_size=1, max_size=12), max_size=200)


@given(names, st.integers(min_value=1, max_value=50))
def test_every_target_is_in_exactly_one_shard_and_shards_are_balanced(targets, shards):
    split = split_into_shards(targets, shards)
    flat = [name for shard in split for name in shard]
    assert sorted(flat) == sorted(set(targets))  # each once, none lost, duplicates folded
    assert len(split) == min(shards, len(set(targets)))
    assert all(split) and max(map(len, split), default=0) - min(map(len, split), default=0) <= 1


def test_a_thousand_targets_in_seven_shards():
    targets = [f"ws{i // 10}/ns{i}" for i in range(1000)]
    split = split_into_shards(targets, 7)
    assert [len(shard) for shard in split] == [143, 143, 143, 143, 143, 143, 142]
    assert sorted(name for shard in split for name in shard) == sorted(targets)


def test_shards_must_be_positive():
    with pytest.raises(ValueError):
        split_into_shards(["a/b"], 0)


@given(st.lists(st.text(min_size=1), max_size=20))
def test_the_worker_event_selects_exactly_its_shard(shard):
    assert parse_timer_event(worker_event(shard)) == shard
