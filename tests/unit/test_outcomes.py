from flink_alerts.outcomes import Kind, Recorder

FIELDS = [
    "targets", "api_calls", "fetched", "new_events", "alerts", "sent", "failed", "pending",
    "dropped", "silenced", "folded", "resolved", "skipped", "errors", "duration_ms", "dry_run",
]  # fmt: skip


def test_the_summary_is_built_from_outcomes_and_keeps_every_field():
    recorder = Recorder()
    target, receiver = recorder.at("ws/ns"), recorder.at("receiver ding")
    target(Kind.FETCHED, 20)
    target(Kind.SILENCED, 3)
    target(Kind.SKIPPED)
    receiver(Kind.SENT)
    receiver(Kind.SENT)
    receiver(Kind.DROPPED, reason="HTTP 400")
    receiver(Kind.PARKED, 5, reason="needs a fix: errcode 310000")
    receiver(Kind.PARKED, 5, reason="needs a fix: errcode 310000")
    target(Kind.ERROR, reason="GetEvents failed", error_type="ApiError")
    target(Kind.FOLDED, 0)  # nothing: not an outcome
    summary = recorder.summary(targets=1, api_calls=4, duration_ms=9, dry_run=False).to_dict()
    assert list(summary) == FIELDS
    assert (summary["fetched"], summary["sent"], summary["dropped"]) == (20, 2, 1)
    assert (summary["silenced"], summary["skipped"], summary["folded"]) == (3, 1, 0)
    assert summary["errors"] == [
        "receiver ding: needs a fix: errcode 310000",
        "ws/ns: GetEvents failed",
    ]
    assert len(recorder.outcomes) == 9
    assert recorder.fields("receiver ding")["sent"] == 2
    assert recorder.fields("ws/ns")["error"] == "GetEvents failed"
