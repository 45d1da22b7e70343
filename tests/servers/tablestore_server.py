"""A protocol-level fake of Alibaba Cloud Tablestore (OTS) for tests, driven by the real SDK.

No Tablestore emulator exists, so this speaks the wire protocol of `tablestore.OTSClient`:
HTTP POST /{Api}, x-ots-* headers signed with HMAC-SHA1 (the SDK's default signature V2),
protobuf bodies built with the SDK's own generated modules, rows in PlainBuffer read and written
with the SDK's PlainBuffer classes. Answers carry the headers and response signature that the SDK
verifies. Supported: CreateTable, ListTable, DeleteTable, GetRow, PutRow, UpdateRow (PUT columns
only), DeleteRow, with row existence and single/composite column conditions. Errors come back as
the service sends them (HTTP status + protobuf Error): OTSConditionCheckFail (403),
OTSObjectNotExist (404), OTSAuthFailed (403; with `network_allowed = False` as a new instance
answers on its public endpoint), OTSParameterInvalid (400). One version per cell.

Usage:

    server = TablestoreTestServer(instance="test-instance", credentials={"key-id": "secret"})
    server.start()
    server.create_table("checkpoints")       # primary key `target` STRING by default
    client = tablestore.OTSClient(server.endpoint, "key-id", "secret", "test-instance")
    server.stop()                            # now unreachable: connection refused

`python -m tests.servers.tablestore_server [PORT]` runs one in the foreground with instance
`test-instance`, credentials `test-key-id`/`test-secret` and table `checkpoints`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import tablestore.protobuf.table_store_filter_pb2 as filter_pb
import tablestore.protobuf.table_store_pb2 as pb
from tablestore.plainbuffer.plain_buffer_builder import PlainBufferBuilder
from tablestore.plainbuffer.plain_buffer_coded_stream import PlainBufferCodedInputStream
from tablestore.plainbuffer.plain_buffer_stream import PlainBufferInputStream

PrimaryKey = list[tuple[str, Any]]
Columns = dict[str, tuple[Any, int]]  # name -> (value, timestamp ms)

_PK_TYPES: dict[str, type | tuple[type, ...]] = {
    "STRING": str,
    "INTEGER": int,
    "BINARY": (bytes, bytearray),
}
_PK_TYPE_NAMES = {pb.STRING: "STRING", pb.INTEGER: "INTEGER", pb.BINARY: "BINARY"}


class OtsError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message


def _table_missing() -> OtsError:
    return OtsError(404, "OTSObjectNotExist", "Requested table does not exist.")


@dataclass(frozen=True)
class OtsRequest:
    api: str
    access_key_id: str
    sts_token: str | None
    status: int
    error_code: str = ""


@dataclass
class _Table:
    primary_key: list[tuple[str, str]]  # (name, STRING|INTEGER|BINARY)
    rows: dict[tuple[Any, ...], tuple[PrimaryKey, Columns]] = field(default_factory=dict)

    def row_id(self, pk: PrimaryKey) -> tuple[Any, ...]:
        names = [name for name, _ in pk]
        expected = [name for name, _ in self.primary_key]
        if names != expected:
            raise OtsError(
                400,
                "OTSParameterInvalid",
                f"Validate PK name fail. Input: {','.join(names)}, Meta: {','.join(expected)}.",
            )
        for (name, value), (_, type_name) in zip(pk, self.primary_key, strict=True):
            if isinstance(value, bool) or not isinstance(value, _PK_TYPES[type_name]):
                raise OtsError(
                    400,
                    "OTSParameterInvalid",
                    f"Validate PK type fail. {name} must be {type_name}.",
                )
        return tuple(bytes(v) if isinstance(v, bytearray) else v for _, v in pk)


class TablestoreTestServer:
    def __init__(
        self,
        instance: str = "test-instance",
        credentials: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.instance = instance
        self.credentials = dict(credentials or {"test-key-id": "test-secret"})
        self.host = host
        self.port = port
        self.requests: list[OtsRequest] = []
        self.delay_s = 0.0  # set > 0 to make every answer slow (timeout tests)
        # False: refuse every request as a new instance refuses its public endpoint.
        self.network_allowed = True
        self._tables: dict[str, _Table] = {}
        self._lock = threading.Lock()
        self._http: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> TablestoreTestServer:
        self._http = ThreadingHTTPServer((self.host, self.port), _Handler)
        self._http.daemon_threads = True
        self._http.fake = self  # type: ignore[attr-defined]
        self.port = self._http.server_address[1]
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> TablestoreTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def create_table(self, name: str, primary_key: PrimaryKey | None = None) -> None:
        with self._lock:
            self._tables[name] = _Table(list(primary_key or [("target", "STRING")]))

    def rows(self, table: str) -> dict[tuple[Any, ...], dict[str, Any]]:
        """Stored rows without timestamps, for assertions."""
        with self._lock:
            stored = self._tables[table].rows
            return {rid: {k: v for k, (v, _) in cols.items()} for rid, (_, cols) in stored.items()}

    # --- one request ------------------------------------------------------------------------

    def handle(self, api: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes, str]:
        """(status, protobuf body, secret to sign the answer with or "" for no signature)."""
        key_id = headers.get("x-ots-accesskeyid", "")
        secret = ""
        try:
            secret = self._authenticate(api, headers, body)
            with self._lock:
                status, payload = 200, self._dispatch(api, body)
            code = ""
        except OtsError as exc:
            status, code = exc.status, exc.code
            payload = pb.Error(code=exc.code, message=exc.message).SerializeToString()
        entry = OtsRequest(api, key_id, headers.get("x-ots-ststoken"), status, code)
        self.requests.append(entry)
        return status, payload, secret

    def _authenticate(self, api: str, headers: dict[str, str], body: bytes) -> str:
        if not self.network_allowed:
            raise OtsError(403, "OTSAuthFailed", "Request denied by instance ACL policies.")
        secret = self.credentials.get(headers.get("x-ots-accesskeyid", ""))
        if secret is None:
            raise OtsError(403, "OTSAuthFailed", "The AccessKeyID does not exist.")
        if "x-ots-signature" not in headers:
            raise OtsError(403, "OTSAuthFailed", "Only signature V2 is supported by this fake.")
        if not hmac.compare_digest(
            headers["x-ots-signature"], _request_signature(secret, api, headers)
        ):
            raise OtsError(403, "OTSAuthFailed", "Signature mismatch.")
        if headers.get("x-ots-contentmd5") != _md5(body):
            raise OtsError(400, "OTSParameterInvalid", "Content md5 mismatch.")
        if headers.get("x-ots-instancename") != self.instance:
            raise OtsError(403, "OTSAuthFailed", "The instance name does not match the endpoint.")
        return secret

    def _dispatch(self, api: str, body: bytes) -> bytes:
        handlers: dict[str, Callable[[bytes], Any]] = {
            "CreateTable": self._create_table,
            "ListTable": self._list_table,
            "DeleteTable": self._delete_table,
            "GetRow": self._get_row,
            "PutRow": self._put_row,
            "UpdateRow": self._update_row,
            "DeleteRow": self._delete_row,
        }
        if api not in handlers:
            raise OtsError(400, "OTSUnsupportOperation", f"{api} is not supported by this fake.")
        return handlers[api](body).SerializeToString()

    def _table(self, name: str) -> _Table:
        if name not in self._tables:
            raise _table_missing()
        return self._tables[name]

    # --- APIs -------------------------------------------------------------------------------

    def _create_table(self, body: bytes) -> Any:
        meta = pb.CreateTableRequest.FromString(body).table_meta
        if meta.table_name in self._tables:
            raise OtsError(409, "OTSObjectAlreadyExist", "Requested table already exists.")
        schema = [(col.name, _PK_TYPE_NAMES[col.type]) for col in meta.primary_key]
        self._tables[meta.table_name] = _Table(schema)
        return pb.CreateTableResponse()

    def _list_table(self, body: bytes) -> Any:
        return pb.ListTableResponse(table_names=sorted(self._tables))

    def _delete_table(self, body: bytes) -> Any:
        name = pb.DeleteTableRequest.FromString(body).table_name
        self._table(name)
        del self._tables[name]
        return pb.DeleteTableResponse()

    def _get_row(self, body: bytes) -> Any:
        request = pb.GetRowRequest.FromString(body)
        table = self._table(request.table_name)
        pk, _ = _read_row(request.primary_key)
        stored = table.rows.get(table.row_id(pk))
        response = pb.GetRowResponse(row=b"")
        _consume(response, read=1)
        if stored is not None:
            wanted = set(request.columns_to_get)
            columns = [
                (name, value, ts)
                for name, (value, ts) in stored[1].items()
                if not wanted or name in wanted
            ]
            response.row = bytes(PlainBufferBuilder.serialize_for_put_row(stored[0], columns))
        return response

    def _put_row(self, body: bytes) -> Any:
        request = pb.PutRowRequest.FromString(body)
        self._write(request.table_name, request.row, request.condition, replace=True)
        return _consume(pb.PutRowResponse(), write=1)

    def _update_row(self, body: bytes) -> Any:
        request = pb.UpdateRowRequest.FromString(body)
        self._write(request.table_name, request.row_change, request.condition, replace=False)
        return _consume(pb.UpdateRowResponse(), write=1)

    def _delete_row(self, body: bytes) -> Any:
        request = pb.DeleteRowRequest.FromString(body)
        table = self._table(request.table_name)
        pk, _ = _read_row(request.primary_key)
        row_id = table.row_id(pk)
        _check_condition(request.condition, table.rows.get(row_id))
        table.rows.pop(row_id, None)
        return _consume(pb.DeleteRowResponse(), write=1)

    def _write(self, table_name: str, row: bytes, condition: Any, *, replace: bool) -> None:
        table = self._table(table_name)
        pk, attributes = _read_row(row)
        row_id = table.row_id(pk)
        current = table.rows.get(row_id)
        _check_condition(condition, current)
        now_ms = int(time.time() * 1000)
        columns: Columns = {} if replace or current is None else dict(current[1])
        for name, value, timestamp in attributes:
            columns[name] = (value, timestamp if timestamp is not None else now_ms)
        table.rows[row_id] = (pk, columns)


# --- conditions ---------------------------------------------------------------------------


def _check_condition(condition: Any, row: tuple[PrimaryKey, Columns] | None) -> None:
    exists = row is not None
    if condition.row_existence == pb.EXPECT_EXIST and not exists:
        raise OtsError(403, "OTSConditionCheckFail", "Condition check failed.")
    if condition.row_existence == pb.EXPECT_NOT_EXIST and exists:
        raise OtsError(403, "OTSConditionCheckFail", "Condition check failed.")
    if condition.column_condition:
        column_filter = filter_pb.Filter.FromString(condition.column_condition)
        if not _filter_passes(column_filter, row[1] if row else {}):
            raise OtsError(403, "OTSConditionCheckFail", "Condition check failed.")


def _filter_passes(column_filter: Any, columns: Columns) -> bool:
    if column_filter.type == filter_pb.FT_SINGLE_COLUMN_VALUE:
        single = filter_pb.SingleColumnValueFilter.FromString(column_filter.filter)
        if single.column_name not in columns:
            return not single.filter_if_missing
        return _compare(single.comparator, columns[single.column_name][0], single.column_value)
    if column_filter.type == filter_pb.FT_COMPOSITE_COLUMN_VALUE:
        composite = filter_pb.CompositeColumnValueFilter.FromString(column_filter.filter)
        results = [_filter_passes(sub, columns) for sub in composite.sub_filters]
        if composite.combinator == filter_pb.LO_NOT:
            return not results[0]
        return all(results) if composite.combinator == filter_pb.LO_AND else any(results)
    raise OtsError(400, "OTSParameterInvalid", "Filter type not supported by this fake.")


_COMPARATORS: dict[int, Callable[[Any, Any], bool]] = {
    filter_pb.CT_EQUAL: lambda a, b: a == b,
    filter_pb.CT_NOT_EQUAL: lambda a, b: a != b,
    filter_pb.CT_GREATER_THAN: lambda a, b: a > b,
    filter_pb.CT_GREATER_EQUAL: lambda a, b: a >= b,
    filter_pb.CT_LESS_THAN: lambda a, b: a < b,
    filter_pb.CT_LESS_EQUAL: lambda a, b: a <= b,
}


def _compare(comparator: int, stored: Any, serialized: bytes) -> bool:
    if comparator not in _COMPARATORS:
        raise OtsError(400, "OTSParameterInvalid", "Comparator not supported by this fake.")
    expected = _read_variant(serialized)
    stored = bytes(stored) if isinstance(stored, bytearray) else stored
    if type(stored) is not type(expected):  # values of different types never match
        return False
    return _COMPARATORS[comparator](stored, expected)


def _read_variant(data: bytes) -> Any:
    """A column value as the SDK serializes it in a condition: type byte, then the value."""
    kind, rest = data[0], data[1:]
    if kind == 0x0:  # VT_INTEGER
        return struct.unpack("<q", rest[:8])[0]
    if kind == 0x1:  # VT_DOUBLE
        return struct.unpack("<d", rest[:8])[0]
    if kind == 0x2:  # VT_BOOLEAN
        return rest[0] != 0
    if kind in (0x3, 0x7):  # VT_STRING, VT_BLOB
        size = struct.unpack("<i", rest[:4])[0]
        value = bytes(rest[4 : 4 + size])
        return value.decode("utf-8") if kind == 0x3 else value
    raise OtsError(400, "OTSParameterInvalid", f"Variant type {kind} not supported by this fake.")


# --- encoding -----------------------------------------------------------------------------


def _read_row(data: bytes) -> tuple[PrimaryKey, list[tuple[str, Any, int | None]]]:
    try:
        return PlainBufferCodedInputStream(PlainBufferInputStream(data)).read_row()
    except Exception as exc:  # the SDK reader also fails on cell types (DELETE in UpdateRow)
        raise OtsError(400, "OTSParameterInvalid", f"Cannot read PlainBuffer row: {exc}") from None


def _consume(response: Any, read: int = 0, write: int = 0) -> Any:
    response.consumed.capacity_unit.read = read
    response.consumed.capacity_unit.write = write
    return response


def _md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode()


def _hmac_sha1(secret: str, text: str) -> str:
    digest = hmac.new(secret.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _canonical_headers(headers: dict[str, str]) -> str:
    items = [
        f"{name}:{value.strip()}"
        for name, value in headers.items()
        if name.startswith("x-ots-") and name != "x-ots-signature"
    ]
    return "\n".join(sorted(items))


def _request_signature(secret: str, api: str, headers: dict[str, str]) -> str:
    return _hmac_sha1(secret, f"/{api}\nPOST\n\n{_canonical_headers(headers)}\n")


def _response_headers(api: str, body: bytes, key_id: str, secret: str) -> dict[str, str]:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    headers = {
        "x-ots-contentmd5": _md5(body),
        "x-ots-requestid": uuid.uuid4().hex,
        "x-ots-date": now,
        "x-ots-contenttype": "protocol buffer",
    }
    if secret:
        signature = _hmac_sha1(secret, f"{_canonical_headers(headers)}\n/{api}")
        headers["authorization"] = f"OTS {key_id}:{signature}"
    return headers


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        fake: TablestoreTestServer = self.server.fake  # type: ignore[attr-defined]
        if fake.delay_s:
            time.sleep(fake.delay_s)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        api = self.path.split("?", 1)[0].strip("/")
        status, payload, secret = fake.handle(api, headers, body)
        key_id = headers.get("x-ots-accesskeyid", "")
        self.send_response(status)
        for name, value in _response_headers(api, payload, key_id, secret).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


if __name__ == "__main__":
    server = TablestoreTestServer(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0).start()
    server.create_table("checkpoints")
    print(server.endpoint, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()
