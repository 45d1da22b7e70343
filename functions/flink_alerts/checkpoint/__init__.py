"""Open the checkpoint store named by the `checkpoint:` URL. OSS and Tablestore import lazily."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import ConfigError
from .store import CheckpointStore


@dataclass(frozen=True)
class Location:
    scheme: str  # file | oss | tablestore
    name: str  # directory, bucket or instance
    path: str  # OSS prefix or Tablestore table; "" for files
    endpoint: str  # "" for files


def parse_location(url: str, *, region: str) -> Location:
    """Check a `checkpoint:` URL without touching the store; raises ConfigError."""
    parts = urlsplit(url)
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    unknown = set(query) - {"endpoint"}
    if unknown:
        raise ConfigError("checkpoint", f"unknown option {sorted(unknown)[0]!r} (known: endpoint)")
    name, path = parts.netloc, parts.path.strip("/")
    if parts.scheme == "file":
        return Location("file", _file_path(url), "", "")
    if parts.scheme == "oss":
        endpoint = query.get("endpoint") or f"https://oss-{region}.aliyuncs.com"
        return Location("oss", name, path, endpoint)
    if parts.scheme == "tablestore":
        if not path or "/" in path:
            raise ConfigError("checkpoint", "use tablestore://INSTANCE/TABLE")
        endpoint = query.get("endpoint") or f"https://{name}.{region}.ots.aliyuncs.com"
        return Location("tablestore", name, path, endpoint)
    raise ConfigError("checkpoint", f"unsupported scheme {parts.scheme!r}")


def open_store(url: str, *, region: str, credentials: Callable[[], Any]) -> CheckpointStore:
    """`credentials` is called only for cloud stores, so local runs need none."""
    where = parse_location(url, region=region)
    if where.scheme == "file":
        from .file import FileBackend

        return CheckpointStore(FileBackend(where.name), local=True)
    if where.scheme == "oss":
        from .oss import OssBackend

        return CheckpointStore(OssBackend(where.name, where.path, where.endpoint, credentials()))
    from .tablestore import TablestoreBackend

    backend = TablestoreBackend(where.name, where.path, where.endpoint, credentials())
    return CheckpointStore(backend)


def _file_path(url: str) -> str:
    """`file:///abs/dir` -> /abs/dir; `file://./rel/dir` -> ./rel/dir (relative to the cwd)."""
    path = url[len("file://") :].split("?", 1)[0]
    if not path:
        raise ConfigError("checkpoint", "file:// needs a directory, e.g. file://./.flink-alerts")
    return path
