"""TablestoreBackend against the protocol-level Tablestore fake on 127.0.0.1, via the real SDK."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
import tablestore
import urllib3

from flink_alerts.checkpoint.backend import Stored
from flink_alerts.checkpoint.tablestore import TablestoreBackend
from flink_alerts.credentials import Credentials
from flink_alerts.errors import CheckpointError
from tests.factories import race
from tests.servers.tablestore_server import TablestoreTestServer

INSTANCE = "test-instance"
KEY_ID = "test-key-id"
SECRET = "ots-secret-DO-NOT-PRINT"
TOKEN = "sts-token-DO-NOT-PRINT"
CREDS = Credentials(KEY_ID, SECRET)
KEY = "job%20one"


@pytest.fixture(scope="module")
def server() -> Iterator[TablestoreTestServer]:
    with TablestoreTestServer(INSTANCE, {KEY_ID: SECRET}) as running:
        yield running


@pytest.fixture
def table(server: TablestoreTestServer) -> str:
    name = f"checkpoints_{uuid.uuid4().hex[:8]}"
    server.create_table(name)
    return name


@pytest.fixture
def backend(server: TablestoreTestServer, table: str) -> TablestoreBackend:
    return TablestoreBackend(INSTANCE, table, server.endpoint, CREDS)


def sdk_client(server: TablestoreTestServer, secret: str = SECRET) -> Any:
    return tablestore.OTSClient(
        server.endpoint, KEY_ID, secret, INSTANCE, retry_policy=tablestore.NoRetryPolicy()
    )


def assert_clean_message(exc: pytest.ExceptionInfo[CheckpointError]) -> None:
    text = str(exc.value)
    assert "\n" not in text
    assert SECRET not in text and TOKEN not in text


# --- the fake itself, through the SDK -----------------------------------------------------


def test_fake_enforces_row_conditions(server, table):
    client = sdk_client(server)
    pk = [("target", "k")]
    absent = tablestore.Condition(tablestore.RowExistenceExpectation.EXPECT_NOT_EXIST)
    client.put_row(table, tablestore.Row(pk, [("version", 1)]), absent)
    with pytest.raises(tablestore.OTSServiceError) as exc:
        client.put_row(table, tablestore.Row(pk, [("version", 9)]), absent)
    assert (exc.value.get_http_status(), exc.value.get_error_code()) == (
        403,
        "OTSConditionCheckFail",
    )

    def version_is(value: int, pass_if_missing: bool) -> Any:
        check = tablestore.SingleColumnCondition(
            "version", value, tablestore.ComparatorType.EQUAL, pass_if_missing=pass_if_missing
        )
        return tablestore.Condition(tablestore.RowExistenceExpectation.EXPECT_EXIST, check)

    with pytest.raises(tablestore.OTSServiceError, match="OTSConditionCheckFail"):
        client.put_row(table, tablestore.Row(pk, [("version", 3)]), version_is(2, False))
    client.put_row(table, tablestore.Row(pk, [("other", 1)]), version_is(1, False))
    # The row has no `version` now: pass_if_missing decides.
    with pytest.raises(tablestore.OTSServiceError, match="OTSConditionCheckFail"):
        client.put_row(table, tablestore.Row(pk, [("version", 5)]), version_is(4, False))
    client.put_row(table, tablestore.Row(pk, [("version", 5)]), version_is(4, True))
    assert server.rows(table) == {("k",): {"version": 5}}


def test_fake_round_trips_rows_and_reports_unknown_tables(server, table):
    client = sdk_client(server)
    pk = [("target", "k")]
    columns = [("s", "text"), ("b", bytearray(b"\x00\xff")), ("i", -7), ("f", 1.5), ("t", True)]
    client.put_row(table, tablestore.Row(pk, columns))
    _, row, _ = client.get_row(table, pk, max_version=1)
    assert row.primary_key == pk
    assert [column[:2] for column in row.attribute_columns] == columns
    with pytest.raises(tablestore.OTSServiceError) as exc:
        client.get_row("no_such_table", pk, max_version=1)
    assert (exc.value.get_http_status(), exc.value.get_error_code()) == (404, "OTSObjectNotExist")


def test_fake_checks_request_signatures(server, table):
    with pytest.raises(tablestore.OTSServiceError) as exc:
        sdk_client(server, secret="wrong").get_row(table, [("target", "k")], max_version=1)
    assert exc.value.get_error_code() == "OTSAuthFailed"


def test_fake_creates_and_lists_tables_through_the_sdk(server):
    client = sdk_client(server)
    name = f"created_{uuid.uuid4().hex[:8]}"
    client.create_table(
        tablestore.TableMeta(name, [("target", "STRING")]),
        tablestore.TableOptions(),
        tablestore.ReservedThroughput(tablestore.CapacityUnit(0, 0)),
    )
    assert name in client.list_table()
    client.delete_table(name)
    assert name not in client.list_table()


# --- load / save --------------------------------------------------------------------------


def test_load_of_unknown_key_is_none(backend):
    assert backend.load(KEY) is None


def test_create_then_load(backend, server, table):
    assert backend.save(KEY, b'{"a": 1}', None) is True
    assert backend.load(KEY) == Stored(1, b'{"a": 1}')
    row = server.rows(table)[(KEY,)]
    assert row["version"] == 1 and row["body"] == bytearray(b'{"a": 1}')
    assert abs(row["updated_at"] - time.time() * 1000) < 60_000


def test_delete_removes_the_row_and_only_that_row(backend, server, table):
    assert backend.save(KEY, b"{}", None) and backend.save(KEY, b"{}", 1)
    assert backend.save("other", b"{}", None)
    backend.delete(KEY)
    assert backend.load(KEY) is None and list(server.rows(table)) == [("other",)]
    backend.delete(KEY)  # nothing there: nothing happens
    assert backend.save(KEY, b"{}", None) and backend.load(KEY).version == 1


def test_save_with_current_version_succeeds(backend):
    backend.save(KEY, b"v1", None)
    assert backend.save(KEY, b"v2", 1) is True
    assert backend.load(KEY) == Stored(2, b"v2")


def test_save_with_wrong_version_writes_nothing(backend, server, table):
    backend.save(KEY, b"v1", None)
    backend.save(KEY, b"v2", 1)
    before = server.rows(table)
    for wrong in (1, 3, 0):
        assert backend.save(KEY, b"wrong", wrong) is False
    assert server.rows(table) == before
    assert backend.load(KEY) == Stored(2, b"v2")


def test_save_with_version_when_record_is_absent_is_refused(backend, server, table):
    assert backend.save(KEY, b"v2", 1) is False
    assert server.rows(table) == {}


def test_save_without_version_when_record_exists_is_refused(backend):
    backend.save(KEY, b"v1", None)
    assert backend.save(KEY, b"again", None) is False
    assert backend.load(KEY) == Stored(1, b"v1")


def test_body_is_any_bytes(backend):
    body = bytes(range(256))
    backend.save(KEY, body, None)
    assert backend.load(KEY) == Stored(1, body)


def test_row_written_by_someone_else_is_reported(backend, server, table):
    sdk_client(server).put_row(table, tablestore.Row([("target", KEY)], [("note", "hand-made")]))
    with pytest.raises(CheckpointError, match="not written by flink-alerts"):
        backend.load(KEY)
    assert backend.save(KEY, b"v", 0) is False  # pass_if_missing=False: no blind overwrite


def test_racing_writers_exactly_one_wins(server, table):
    backend = TablestoreBackend(INSTANCE, table, server.endpoint, CREDS)
    backend.save(KEY, b"start", None)
    conflicts_before = sum(r.error_code == "OTSConditionCheckFail" for r in server.requests)
    for expected in range(1, 31):
        writers = [TablestoreBackend(INSTANCE, table, server.endpoint, CREDS) for _ in range(6)]
        results = race(
            [partial(w.save, KEY, f"writer {i}".encode(), expected) for i, w in enumerate(writers)]
        )
        assert results.count(True) == 1, results
        winner = results.index(True)
        assert backend.load(KEY) == Stored(expected + 1, f"writer {winner}".encode())
    conflicts = sum(r.error_code == "OTSConditionCheckFail" for r in server.requests)
    assert conflicts - conflicts_before == 30 * 5


def test_racing_first_saves_exactly_one_wins(server, table):
    for round_no in range(10):
        key = f"first-{round_no}"
        writers = [TablestoreBackend(INSTANCE, table, server.endpoint, CREDS) for _ in range(6)]
        results = race([partial(w.save, key, b"x", None) for w in writers])
        assert results.count(True) == 1, results


def test_describe(backend, table):
    assert backend.describe() == f"tablestore://{INSTANCE}/{table}"


def test_sts_token_is_sent(server, table):
    backend = TablestoreBackend(
        INSTANCE, table, server.endpoint, Credentials(KEY_ID, SECRET, TOKEN)
    )
    backend.save(KEY, b"v1", None)
    assert server.requests[-1].sts_token == TOKEN


# --- failures -----------------------------------------------------------------------------


def test_missing_table_tells_how_to_create_it(server):
    backend = TablestoreBackend(INSTANCE, "no_such_table", server.endpoint, CREDS)
    for action in (lambda: backend.load(KEY), lambda: backend.save(KEY, b"v", None)):
        with pytest.raises(CheckpointError) as exc:
            action()
        text = str(exc.value)
        assert f"tablestore://{INSTANCE}/no_such_table key {KEY}" in text
        assert "OTSObjectNotExist" in text
        assert "primary key column `target` of type STRING" in text
        assert_clean_message(exc)


def test_table_with_another_primary_key_is_reported(server):
    server.create_table("wrong_pk", [("id", "INTEGER")])
    backend = TablestoreBackend(INSTANCE, "wrong_pk", server.endpoint, CREDS)
    with pytest.raises(CheckpointError, match="`target` of type STRING"):
        backend.load(KEY)


def test_wrong_secret_is_reported_without_secrets(server, table):
    backend = TablestoreBackend(INSTANCE, table, server.endpoint, Credentials(KEY_ID, SECRET + "x"))
    with pytest.raises(CheckpointError) as exc:
        backend.save(KEY, b"v", None)
    assert "OTSAuthFailed" in str(exc.value)
    assert_clean_message(exc)


def test_unreachable_endpoint_fails_fast_with_clear_message(table):
    stopped = TablestoreTestServer(INSTANCE, {KEY_ID: SECRET}).start()
    endpoint = stopped.endpoint
    backend = TablestoreBackend(INSTANCE, table, endpoint, Credentials(KEY_ID, SECRET, TOKEN))
    stopped.stop()
    started = time.monotonic()
    with pytest.raises(CheckpointError) as exc:
        backend.save(KEY, b"v", None)
    assert time.monotonic() - started < 3
    assert f"cannot reach {endpoint}" in str(exc.value)
    assert f"tablestore://{INSTANCE}/{table} key {KEY}" in str(exc.value)
    assert_clean_message(exc)


def test_silent_endpoint_times_out(server, table):
    backend = TablestoreBackend(INSTANCE, table, server.endpoint, CREDS, read_timeout=0.5)
    server.delay_s = 2
    try:
        started = time.monotonic()
        with pytest.raises(CheckpointError, match="did not answer in time"):
            backend.load(KEY)
        assert time.monotonic() - started < 1.5
    finally:
        server.delay_s = 0


def test_bad_endpoint_is_a_checkpoint_error():
    with pytest.raises(CheckpointError, match=f"tablestore://{INSTANCE}/t"):
        TablestoreBackend(INSTANCE, "t", "ftp://nowhere", CREDS)


def test_module_import_is_lazy():
    """Importing the checkpoint package must not pull in the Tablestore SDK (or numpy)."""
    code = (
        "import sys, flink_alerts.checkpoint, flink_alerts.checkpoint.store; "
        "print('tablestore' in sys.modules, 'numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_instance_acl_refusal_is_explained_as_a_network_setting(server, table, backend):
    server.network_allowed = False
    try:
        with pytest.raises(CheckpointError) as exc:
            backend.load(KEY)
    finally:
        server.network_allowed = True
    text = str(exc.value)
    assert "OTSAuthFailed: Request denied by instance ACL policies" in text
    assert "network settings" in text and "VPC endpoint" in text
    assert "AccessKey" not in text  # not a credentials problem
    assert_clean_message(exc)


@pytest.mark.parametrize(
    ("endpoint", "vpc_hint"),
    [
        ("https://inst.cn-hangzhou.vpc.tablestore.aliyuncs.com", True),
        ("https://inst.cn-hangzhou.ots.aliyuncs.com", False),
    ],
)
def test_unreachable_vpc_endpoint_says_the_function_must_be_in_the_vpc(endpoint, vpc_hint):
    from flink_alerts.checkpoint.tablestore import _network_reason

    refused = urllib3.exceptions.NewConnectionError(None, "Name or service not known")
    reason = _network_reason(urllib3.exceptions.MaxRetryError(None, "/", refused), endpoint)
    assert reason.startswith(f"cannot reach {endpoint} (NewConnectionError)")
    assert ("put the function in that VPC" in reason) is vpc_hint
