"""ListJobs: a deployment's current status and failure cause, from the local Flink server."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from flink_alerts.errors import ApiError
from flink_alerts.flink.jobs import latest, parse_job
from tests.servers.flink_server import ms_of

FAILED_AT = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)


def test_list_jobs_gives_status_and_failure_of_one_deployment(
    flink_server, flink_client, flink_target
):
    failure = {
        "reason": "JOB_FAILED",
        "message": "java.lang.OutOfMemoryError: Java heap space",
        "failedAt": ms_of(FAILED_AT),
    }
    flink_server.add_job("dep-1", "RUNNING", started_ms=ms_of(FAILED_AT) - 60_000)
    flink_server.add_job("dep-1", "FAILED", failure=failure, started_ms=ms_of(FAILED_AT) - 1000)
    flink_server.add_job("dep-2", "RUNNING")

    jobs = flink_client.list_jobs(flink_target, "dep-1")

    assert sorted(job.status for job in jobs) == ["FAILED", "RUNNING"]
    current = latest(jobs)
    assert current.status == "FAILED"
    assert current.failure.reason == "JOB_FAILED" and "OutOfMemoryError" in current.failure.message
    assert current.failure.failed_at == FAILED_AT
    assert flink_server.request_count("ListJobs") == 1
    assert flink_server.received[-1].query["deploymentId"] == "dep-1"


def test_list_jobs_of_a_deployment_without_jobs(flink_server, flink_client, flink_target):
    assert flink_client.list_jobs(flink_target, "dep-unknown") == []
    assert latest([]) is None


def test_list_jobs_permission_error_names_the_ram_action(flink_server, flink_client, flink_target):
    flink_server.denied_actions.add("ListJobs")
    with pytest.raises(ApiError, match="stream:ListJobs"):
        flink_client.list_jobs(flink_target, "dep-1")


@pytest.mark.parametrize(
    ("raw", "status", "reason"),
    [
        ({"jobId": "j", "status": {"currentJobStatus": "running"}}, "RUNNING", None),
        ({"jobId": "j", "status": {"failure": {"reason": "R", "failedAt": "x"}}}, "", "R"),
        ({"jobId": "j"}, "", None),
    ],
)
def test_odd_job_shapes_are_read_without_crashing(raw, status, reason):
    job = parse_job(raw)
    assert job.status == status
    assert (job.failure.reason if job.failure else None) == reason
