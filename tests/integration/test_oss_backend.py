"""OssBackend against a local OSS (moto + create-only semantics) on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import oss2
import pytest

from flink_alerts.checkpoint.backend import Stored
from flink_alerts.checkpoint.oss import OssBackend
from flink_alerts.credentials import Credentials
from flink_alerts.errors import CheckpointError
from tests.factories import race
from tests.servers.oss_server import OssTestServer

SECRET = "oss-secret-DO-NOT-PRINT"
TOKEN = "sts-token-DO-NOT-PRINT"
CREDS = Credentials("test-key-id", SECRET)
KEY = "job%20one"  # record keys are percent-encoded target names


@pytest.fixture(scope="module")
def server() -> Iterator[OssTestServer]:
    with OssTestServer() as running:
        yield running


@pytest.fixture
def bucket(server: OssTestServer) -> str:
    return server.create_bucket()


@pytest.fixture
def backend(server: OssTestServer, bucket: str) -> OssBackend:
    return OssBackend(bucket, "flink-alerts/checkpoints", server.endpoint, CREDS)


def raw_bucket(server: OssTestServer, bucket: str) -> oss2.Bucket:
    return oss2.Bucket(oss2.Auth("test-key-id", SECRET), server.endpoint, bucket)


def version_objects(server: OssTestServer, bucket: str) -> list[str]:
    return server.object_keys(bucket, f"flink-alerts/checkpoints/{KEY}/")


def assert_clean_message(exc: pytest.ExceptionInfo[CheckpointError]) -> None:
    text = str(exc.value)
    assert "\n" not in text
    assert SECRET not in text and TOKEN not in text


# --- the test server itself ---------------------------------------------------------------


def test_server_refuses_to_overwrite_with_forbid_overwrite(server, bucket):
    raw = raw_bucket(server, bucket)
    create_only = {"x-oss-forbid-overwrite": "true"}
    raw.put_object("k", b"first", headers=create_only)
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        raw.put_object("k", b"second", headers=create_only)
    assert (exc.value.status, exc.value.code) == (409, "FileAlreadyExists")
    assert raw.get_object("k").read() == b"first"
    raw.put_object("k", b"third")  # without the header OSS overwrites
    assert raw.get_object("k").read() == b"third"


def test_server_create_only_is_atomic_under_concurrency(server, bucket):
    raw = raw_bucket(server, bucket)

    def create(name: str, body: str) -> bool:
        try:
            raw.put_object(name, body, headers={"x-oss-forbid-overwrite": "true"})
            return True
        except oss2.exceptions.ServerError as exc:
            assert exc.status == 409
            return False

    for round_no in range(10):
        name = f"race-{round_no}"
        results = race([partial(create, name, str(i)) for i in range(6)])
        assert results.count(True) == 1
        assert raw.get_object(name).read() == str(results.index(True)).encode()


# --- load / save --------------------------------------------------------------------------


def test_load_of_unknown_key_is_none(backend):
    assert backend.load(KEY) is None


def test_create_then_load(backend, server, bucket):
    assert backend.save(KEY, b'{"a": 1}', None) is True
    assert backend.load(KEY) == Stored(1, b'{"a": 1}')
    assert version_objects(server, bucket) == [f"flink-alerts/checkpoints/{KEY}/000000000001.json"]


def test_save_with_current_version_succeeds(backend):
    backend.save(KEY, b"v1", None)
    assert backend.save(KEY, b"v2", 1) is True
    assert backend.load(KEY) == Stored(2, b"v2")


def test_save_with_wrong_version_writes_nothing(backend, server, bucket):
    backend.save(KEY, b"v1", None)
    backend.save(KEY, b"v2", 1)
    before = version_objects(server, bucket)
    assert backend.save(KEY, b"late", 1) is False
    assert backend.save(KEY, b"ahead", 5) is False
    assert backend.save(KEY, b"zero", 0) is False
    assert backend.load(KEY) == Stored(2, b"v2")
    assert version_objects(server, bucket) == before


def test_save_with_long_stale_version_is_refused_and_leaves_nothing(backend, server, bucket):
    backend.save(KEY, b"v1", None)
    for version in range(1, 6):
        assert backend.save(KEY, f"v{version + 1}".encode(), version)
    before = version_objects(server, bucket)
    assert [name[-17:-5] for name in before] == ["000000000005", "000000000006"]
    assert backend.save(KEY, b"stale", 1) is False
    assert backend.load(KEY) == Stored(6, b"v6")
    assert version_objects(server, bucket) == before


def test_writer_overtaken_after_its_listing_is_refused(backend, server, bucket, monkeypatch):
    """It listed when version 1 was newest, then stalled while others saved up to 6 and removed
    version 2: its create-only PUT of version 2 succeeds; the second listing must catch that."""
    backend.save(KEY, b"v1", None)
    for version in range(1, 6):
        backend.save(KEY, b"v", version)
    before = version_objects(server, bucket)
    real_versions = backend._versions
    listings = iter([[1]])
    monkeypatch.setattr(
        backend, "_versions", lambda key: next(listings, None) or real_versions(key)
    )
    puts_before = [r for r in server.requests if r.method == "PUT" and r.status == 200]
    assert backend.save(KEY, b"stale", 1) is False
    puts_after = [r for r in server.requests if r.method == "PUT" and r.status == 200]
    assert len(puts_after) == len(puts_before) + 1  # the create really happened...
    assert version_objects(server, bucket) == before  # ...and was removed again
    assert backend.load(KEY).version == 6


def test_save_without_version_when_record_exists_is_refused(backend):
    backend.save(KEY, b"v1", None)
    assert backend.save(KEY, b"again", None) is False
    assert backend.load(KEY) == Stored(1, b"v1")


def test_save_without_version_after_cleanup_is_refused(backend):
    backend.save(KEY, b"v1", None)
    for version in range(1, 4):
        backend.save(KEY, b"v", version)
    assert backend.save(KEY, b"again", None) is False
    assert backend.load(KEY).version == 4


def test_old_versions_are_cleaned_up(backend, server, bucket):
    backend.save(KEY, b"v1", None)
    for version in range(1, 10):
        backend.save(KEY, b"v", version)
    assert version_objects(server, bucket) == [
        f"flink-alerts/checkpoints/{KEY}/000000000009.json",
        f"flink-alerts/checkpoints/{KEY}/000000000010.json",
    ]


def test_delete_removes_every_version_and_only_that_record(backend, server, bucket):
    for version in (None, 1, 2):
        assert backend.save(KEY, b"{}", version)
    assert backend.save("other", b"{}", None)
    backend.delete(KEY)
    assert backend.load(KEY) is None and version_objects(server, bucket) == []
    assert backend.load("other") is not None
    backend.delete(KEY)  # nothing there: nothing happens
    assert backend.save(KEY, b"{}", None)  # and the key starts over at version 1
    assert backend.load(KEY).version == 1


def test_keys_do_not_interfere(backend):
    backend.save("a", b"A", None)
    backend.save("ab", b"AB", None)
    assert backend.load("a") == Stored(1, b"A")
    assert backend.load("ab") == Stored(1, b"AB")


def test_foreign_objects_in_the_folder_are_ignored(backend, server, bucket):
    raw_bucket(server, bucket).put_object(f"flink-alerts/checkpoints/{KEY}/README", b"hi")
    assert backend.load(KEY) is None
    backend.save(KEY, b"v1", None)
    assert backend.load(KEY) == Stored(1, b"v1")


def test_empty_prefix(server, bucket):
    backend = OssBackend(bucket, "", server.endpoint, CREDS)
    backend.save(KEY, b"v1", None)
    assert server.object_keys(bucket) == [f"{KEY}/000000000001.json"]
    assert backend.describe() == f"oss://{bucket}/"


def test_load_looks_again_when_the_newest_version_vanishes(backend, monkeypatch):
    backend.save(KEY, b"v1", None)
    real_versions = backend._versions
    calls = iter([[7]])  # first listing names a version that is gone by the time we get it
    monkeypatch.setattr(backend, "_versions", lambda key: next(calls, None) or real_versions(key))
    assert backend.load(KEY) == Stored(1, b"v1")


def test_racing_writers_exactly_one_wins(server, bucket):
    backend = OssBackend(bucket, "race", server.endpoint, CREDS)
    backend.save(KEY, b"start", None)
    conflicts_before = sum(r.status == 409 for r in server.requests)
    for expected in range(1, 21):
        writers = [OssBackend(bucket, "race", server.endpoint, CREDS) for _ in range(6)]
        saves = [
            partial(w.save, KEY, f"writer {i}".encode(), expected) for i, w in enumerate(writers)
        ]
        results = race(saves)
        assert results.count(True) == 1, results
        winner = results.index(True)
        assert backend.load(KEY) == Stored(expected + 1, f"writer {winner}".encode())
    # The race reached the create-only PUTs, not just the listing before them.
    assert sum(r.status == 409 for r in server.requests) > conflicts_before


def test_describe(backend, bucket):
    assert backend.describe() == f"oss://{bucket}/flink-alerts/checkpoints"


def test_sts_credentials_use_sts_auth(server, bucket):
    backend = OssBackend(bucket, "p", server.endpoint, Credentials("id", SECRET, TOKEN))
    assert isinstance(backend._bucket.auth, oss2.StsAuth)
    backend.save(KEY, b"v1", None)
    assert backend.load(KEY) == Stored(1, b"v1")


# --- failures -----------------------------------------------------------------------------


def test_unreachable_endpoint_fails_fast_with_clear_message(bucket):
    stopped = OssTestServer().start()
    endpoint = stopped.endpoint
    backend = OssBackend(bucket, "p", endpoint, Credentials("id", SECRET, TOKEN))
    stopped.stop()
    started = time.monotonic()
    with pytest.raises(CheckpointError) as exc:
        backend.load(KEY)
    assert time.monotonic() - started < 3
    assert f"cannot reach {endpoint}" in str(exc.value)
    assert f"oss://{bucket}/p key {KEY}" in str(exc.value)
    assert_clean_message(exc)


def test_silent_endpoint_times_out(server, bucket):
    backend = OssBackend(bucket, "p", server.endpoint, CREDS, read_timeout=0.5)
    server.delay_s = 2
    try:
        started = time.monotonic()
        with pytest.raises(CheckpointError, match="did not answer in time"):
            backend.load(KEY)
        assert time.monotonic() - started < 1.5
    finally:
        server.delay_s = 0


def test_missing_bucket_is_reported(server):
    backend = OssBackend("no-such-bucket-here", "p", server.endpoint, CREDS)
    with pytest.raises(CheckpointError) as exc:
        backend.save(KEY, b"v1", None)
    assert "oss://no-such-bucket-here/p" in str(exc.value)
    assert "NoSuchBucket" in str(exc.value)
    assert_clean_message(exc)


def deny_as_oss_does(request_id: str) -> Callable[..., None]:
    """An oss2 call answered with OSS's 403 AccessDenied (the local server checks no permissions)."""

    def deny(*args: Any, **kwargs: Any) -> None:
        raise oss2.exceptions.ServerError(
            403, {"x-oss-request-id": request_id}, b"", {"Code": "AccessDenied", "Message": "no"}
        )

    return deny


def test_access_denied_is_reported_without_secrets(backend, monkeypatch):
    monkeypatch.setattr(backend._bucket, "list_objects_v2", deny_as_oss_does("REQ1"))
    with pytest.raises(CheckpointError) as exc:
        backend.load(KEY)
    assert "AccessDenied (HTTP 403, requestId REQ1)" in str(exc.value)
    assert_clean_message(exc)


def test_invalid_bucket_name_is_a_checkpoint_error(server):
    with pytest.raises(CheckpointError, match="oss://Bad_Name/p"):
        OssBackend("Bad_Name", "p", server.endpoint, CREDS)


# --- buckets with versioning: create-only writes are not safe there ----------------------------


def test_server_ignores_forbid_overwrite_on_a_versioned_bucket_like_oss(server, bucket):
    raw = raw_bucket(server, bucket)
    create_only = {"x-oss-forbid-overwrite": "true"}
    raw.put_object("k", b"first", headers=create_only)
    server.set_versioning(bucket, "Enabled")
    raw.put_object("k", b"second", headers=create_only)
    assert raw.get_object("k").read() == b"second"
    assert raw.get_bucket_versioning().status == "Enabled"


@pytest.mark.parametrize("status", ["Enabled", "Suspended"])
def test_versioned_bucket_is_refused_before_any_write(server, bucket, status):
    server.set_versioning(bucket, status)
    backend = OssBackend(bucket, "p", server.endpoint, CREDS)
    with pytest.raises(CheckpointError) as exc:
        backend.save(KEY, b"v1", None)
    assert f"oss://{bucket}/p key {KEY}: bucket versioning is {status}" in str(exc.value)
    assert "never enabled" in str(exc.value)
    assert server.object_keys(bucket) == []
    with pytest.raises(CheckpointError, match="versioning"):
        backend.load(KEY)
    assert_clean_message(exc)


def test_bucket_versioning_is_asked_once_per_process_and_bucket(server, bucket):
    def versioning_requests() -> int:
        return sum(
            1 for r in server.requests if r.query.startswith("versioning") and bucket in r.path
        )

    first = OssBackend(bucket, "a", server.endpoint, CREDS)
    race([lambda: first.load(KEY), lambda: first.load(KEY)])
    first.save(KEY, b"v1", None)
    OssBackend(bucket, "b", server.endpoint, CREDS).load(KEY)  # a new backend, same process
    assert versioning_requests() == 1
    other = server.create_bucket()
    OssBackend(other, "a", server.endpoint, CREDS).load(KEY)
    assert sum(1 for r in server.requests if r.query.startswith("versioning")) >= 2


def test_versioning_check_denied_names_the_missing_permission(backend, monkeypatch):
    monkeypatch.setattr(backend._bucket, "get_bucket_versioning", deny_as_oss_does("REQ2"))
    with pytest.raises(CheckpointError) as exc:
        backend.load(KEY)
    assert "GetBucketVersioning failed: AccessDenied" in str(exc.value)
    assert "oss:GetBucketVersioning" in str(exc.value)
