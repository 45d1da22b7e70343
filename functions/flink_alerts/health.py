"""Is the bridge itself healthy? Pure: (health state, what this run saw) -> (new state, notices).

A target is unhealthy after `failed_runs` consecutive failed runs; a receiver is unhealthy while
an alert has been parked for it longer than `parked_longer_than`. The first unhealthy moment
yields one "degraded" notice, the first healthy moment after it one "recovered" notice.

State is per target with something wrong (failure streak, oldest parked alert per receiver, last
seen), so runs that each handle only some targets (shards) update only theirs and the verdict
covers all of them; a healthy target has no entry, so healthy runs change nothing. A target no run
has seen for `forget_after_s` (removed from the config or no longer discovered) is forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal


@dataclass(frozen=True)
class Policy:
    failed_runs: int = 3
    parked_longer_than_s: float = 900.0
    forget_after_s: float = 86400.0


@dataclass(frozen=True)
class Observation:
    """One target in one run: its error ("" when it worked) and, when it worked, when the oldest
    alert still parked for each receiver was queued."""

    error: str = ""
    oldest_parked: dict[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class TargetHealth:
    seen_at: datetime
    failed_runs: int = 0
    last_error: str = ""
    oldest_parked: dict[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class HealthState:
    targets: dict[str, TargetHealth] = field(default_factory=dict)
    degraded: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "degraded": self.degraded,
            "targets": {
                name: {
                    "seen_at": health.seen_at.isoformat(),
                    "failed_runs": health.failed_runs,
                    "last_error": health.last_error,
                    "oldest_parked": {r: t.isoformat() for r, t in health.oldest_parked.items()},
                }
                for name, health in self.targets.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HealthState:
        targets = {
            name: TargetHealth(
                seen_at=datetime.fromisoformat(item["seen_at"]),
                failed_runs=int(item.get("failed_runs", 0)),
                last_error=str(item.get("last_error", "")),
                oldest_parked={
                    r: datetime.fromisoformat(t) for r, t in item.get("oldest_parked", {}).items()
                },
            )
            for name, item in data.get("targets", {}).items()
        }
        return cls(targets=targets, degraded=bool(data.get("degraded", False)))


@dataclass(frozen=True)
class Notice:
    kind: Literal["degraded", "recovered"]
    problems: tuple[str, ...]  # what is wrong (degraded) or was wrong (recovered)


def assess(
    state: HealthState,
    observations: dict[str, Observation],
    *,
    now: datetime,
    policy: Policy,
) -> tuple[HealthState, list[Notice]]:
    """Fold this run's observations in; targets long unseen are forgotten."""
    targets = {
        name: health
        for name, health in state.targets.items()
        if (now - health.seen_at).total_seconds() < policy.forget_after_s
    }
    for name, seen in observations.items():
        health = _observe(targets.get(name, TargetHealth(now)), seen, now)
        if health is None:
            targets.pop(name, None)
        else:
            targets[name] = health
    problems = _problems(targets, now, policy)
    new = HealthState(targets=targets, degraded=bool(problems))
    if problems and not state.degraded:
        return new, [Notice("degraded", problems)]
    if not problems and state.degraded:
        return new, [Notice("recovered", _earlier_problems(state, policy))]
    return new, []


def _observe(health: TargetHealth, seen: Observation, now: datetime) -> TargetHealth | None:
    """The target's new health; None when there is nothing to remember (all well)."""
    if seen.error:  # parked alerts are unknown this run: keep what was known
        return replace(
            health, seen_at=now, failed_runs=health.failed_runs + 1, last_error=seen.error
        )
    if seen.oldest_parked:
        return TargetHealth(seen_at=now, oldest_parked=dict(seen.oldest_parked))
    return None


def _problems(targets: dict[str, TargetHealth], now: datetime, policy: Policy) -> tuple[str, ...]:
    failing = [
        f"{name}: {health.failed_runs} failed runs in a row (last: {health.last_error})"
        for name, health in sorted(targets.items())
        if health.failed_runs >= policy.failed_runs
    ]
    return tuple(failing) + tuple(_parked_problems(targets, now, policy))


def _parked_problems(targets: dict[str, TargetHealth], now: datetime, policy: Policy) -> list[str]:
    oldest: dict[str, datetime] = {}
    for health in targets.values():
        for receiver, queued_at in health.oldest_parked.items():
            oldest[receiver] = min(queued_at, oldest.get(receiver, queued_at))
    return [
        f"receiver {receiver}: an alert has waited {int((now - queued_at).total_seconds() // 60)} min"
        for receiver, queued_at in sorted(oldest.items())
        if (now - queued_at).total_seconds() > policy.parked_longer_than_s
    ]


def _earlier_problems(state: HealthState, policy: Policy) -> tuple[str, ...]:
    return tuple(
        f"{name}: runs work again"
        for name, health in sorted(state.targets.items())
        if health.failed_runs >= policy.failed_runs
    ) or ("every target runs and every receiver takes its alerts again",)
