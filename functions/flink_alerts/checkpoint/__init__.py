"""Open the checkpoint store named by the `checkpoint:` URL. OSS and Tablestore import lazily.

Where the function runs decides two defaults. In Function Compute a Tablestore instance is reached
through its VPC endpoint (`INSTANCE.REGION.vpc.tablestore.aliyuncs.com`; the function must be in a
VPC bound to the instance): instances created today refuse their public endpoint. Outside FC it is
the public endpoint (`INSTANCE.REGION.ots.aliyuncs.com`, public access allowed on the instance).
`?endpoint=` overrides both. And in FC a `file://` checkpoint must be on a NAS mount under /mnt/:
/code is read-only and /tmp is lost with the instance.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import ConfigError
from ..function_compute import in_function_compute
from .store import CheckpointStore

NAS_MOUNTS = "/mnt/"


@dataclass(frozen=True)
class Location:
    scheme: str  # file | oss | tablestore
    name: str  # directory, bucket or instance
    path: str  # OSS prefix or Tablestore table; "" for files
    endpoint: str  # "" for files


def parse_location(url: str, *, region: str, in_fc: bool = False) -> Location:
    """Check a `checkpoint:` URL without touching the store; raises ConfigError.

    `in_fc`: the function runs in Function Compute (see the module docstring)."""
    parts = urlsplit(url)
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    unknown = set(query) - {"endpoint"}
    if unknown:
        raise ConfigError("checkpoint", f"unknown option {sorted(unknown)[0]!r} (known: endpoint)")
    name, path = parts.netloc, parts.path.strip("/")
    if parts.scheme == "file":
        directory = _file_path(url)
        if in_fc:
            _require_nas_mount(directory)
        return Location("file", directory, "", "")
    if parts.scheme == "oss":
        endpoint = query.get("endpoint") or f"https://oss-{region}.aliyuncs.com"
        return Location("oss", name, path, endpoint)
    if parts.scheme == "tablestore":
        if not path or "/" in path:
            raise ConfigError("checkpoint", "use tablestore://INSTANCE/TABLE")
        endpoint = query.get("endpoint") or tablestore_endpoint(name, region, in_fc=in_fc)
        return Location("tablestore", name, path, endpoint)
    raise ConfigError("checkpoint", f"unsupported scheme {parts.scheme!r}")


def tablestore_endpoint(instance: str, region: str, *, in_fc: bool) -> str:
    if in_fc:
        return f"https://{instance}.{region}.vpc.tablestore.aliyuncs.com"
    return f"https://{instance}.{region}.ots.aliyuncs.com"


def open_store(
    url: str, *, region: str, credentials: Callable[[], Any], in_fc: bool | None = None
) -> CheckpointStore:
    """`credentials` is called only for cloud stores, so local runs need none.
    `in_fc` defaults to what the environment says (FC_FUNCTION_NAME)."""
    in_fc = in_function_compute() if in_fc is None else in_fc
    where = parse_location(url, region=region, in_fc=in_fc)
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


def _require_nas_mount(directory: str) -> None:
    absolute = posixpath.normpath(posixpath.join("/code", directory))
    if not absolute.startswith(NAS_MOUNTS):
        raise ConfigError(
            "checkpoint",
            f"file://{directory} is not kept in Function Compute (/code is read-only, /tmp is "
            "lost with the instance): use oss://BUCKET/PREFIX or tablestore://INSTANCE/TABLE, "
            "or a NAS file system mounted under /mnt/ (file:///mnt/NAS/flink-alerts)",
        )
