"""ListJobs answers: a deployment's current job status and, for a failure, its cause."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import EventParseError, MalformedResponseError
from ..events import parse_created_at


@dataclass(frozen=True)
class Failure:
    reason: str
    message: str
    failed_at: datetime | None


@dataclass(frozen=True)
class JobStatus:
    job_id: str
    status: str  # STARTING, RUNNING, CANCELLING, FAILED, CANCELLED, FINISHED
    started_at: datetime | None
    failure: Failure | None = None


def parse_job(raw: Any) -> JobStatus:
    if not isinstance(raw, dict):
        raise MalformedResponseError(f"ListJobs: a job is {type(raw).__name__}, not an object")
    status = raw.get("status") if isinstance(raw.get("status"), dict) else {}
    failure = status.get("failure")
    return JobStatus(
        job_id=str(raw.get("jobId") or ""),
        status=str(status.get("currentJobStatus") or "").upper(),
        started_at=_time(raw.get("startTime") or raw.get("createdAt")),
        failure=_failure(failure) if isinstance(failure, dict) else None,
    )


def latest(jobs: list[JobStatus]) -> JobStatus | None:
    """The deployment's current job: the one started last (the order of `data` is not documented)."""
    if not jobs:
        return None
    return max(jobs, key=lambda job: job.started_at.timestamp() if job.started_at else -math.inf)


def _failure(raw: dict[str, Any]) -> Failure:
    return Failure(
        reason=str(raw.get("reason") or ""),
        message=str(raw.get("message") or ""),
        failed_at=_time(raw.get("failedAt")),
    )


def _time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        return parse_created_at(value)
    except EventParseError:
        return None
