"""Open the checkpoint store named by the `checkpoint:` URL. OSS and Tablestore import lazily."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import ConfigError
from .store import CheckpointStore


def open_store(url: str, *, region: str, credentials: Callable[[], Any]) -> CheckpointStore:
    """`credentials` is called only for cloud stores, so local runs need none."""
    parts = urlsplit(url)
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    unknown = set(query) - {"endpoint"}
    if unknown:
        raise ConfigError("checkpoint", f"unknown option {sorted(unknown)[0]!r} (known: endpoint)")
    if parts.scheme == "file":
        from .file import FileBackend

        return CheckpointStore(FileBackend(_file_path(url)), local=True)
    name, path = parts.netloc, parts.path.strip("/")
    if parts.scheme == "oss":
        from .oss import OssBackend

        endpoint = query.get("endpoint") or f"https://oss-{region}.aliyuncs.com"
        return CheckpointStore(OssBackend(name, path, endpoint, credentials()))
    if parts.scheme == "tablestore":
        if not path or "/" in path:
            raise ConfigError("checkpoint", "use tablestore://INSTANCE/TABLE")
        from .tablestore import TablestoreBackend

        endpoint = query.get("endpoint") or f"https://{name}.{region}.ots.aliyuncs.com"
        return CheckpointStore(TablestoreBackend(name, path, endpoint, credentials()))
    raise ConfigError("checkpoint", f"unsupported scheme {parts.scheme!r}")


def _file_path(url: str) -> str:
    """`file:///abs/dir` -> /abs/dir; `file://./rel/dir` -> ./rel/dir (relative to the cwd)."""
    path = url[len("file://") :].split("?", 1)[0]
    if not path:
        raise ConfigError("checkpoint", "file:// needs a directory, e.g. file://./.flink-alerts")
    return path
