"""Checkpoint records as local files: atomic replace plus an exclusive lock around each CAS."""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import CheckpointError
from .backend import Backend, Stored

# First line of every file; the JSON record follows, readable with `tail -n +2`.
_HEADER = "# flink-alerts checkpoint version "


class FileBackend(Backend):
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def describe(self) -> str:
        return f"file://{self.directory}"

    def load(self, key: str) -> Stored | None:
        try:
            return _parse(self._path(key).read_bytes())
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointError(
                f"{self._path(key)}: cannot read checkpoint: {exc.strerror}"
            ) from None

    def save(self, key: str, body: bytes, expected_version: int | None) -> bool:
        with self._locked(key):
            current = self.load(key)
            if (current.version if current else None) != expected_version:
                return False
            version = (expected_version or 0) + 1
            self._write_atomically(self._path(key), _HEADER.encode() + b"%d\n" % version + body)
            return True

    def delete(self, key: str) -> None:
        with self._locked(key):
            try:
                self._path(key).unlink(missing_ok=True)
                # Nobody writes a deleted record (see Backend.delete), so its lock can go too.
                (self.directory / f"{key}.lock").unlink(missing_ok=True)
            except OSError as exc:
                raise CheckpointError(
                    f"{self._path(key)}: cannot delete checkpoint: {exc.strerror}"
                ) from None

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    @contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle = open(self.directory / f"{key}.lock", "a+b")  # noqa: SIM115
        except OSError as exc:
            raise CheckpointError(
                f"{self.directory}: cannot open checkpoint lock: {exc.strerror}"
            ) from None
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def _write_atomically(self, path: Path, data: bytes) -> None:
        try:
            fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temp, path)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
            directory = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as exc:
            raise CheckpointError(f"{path}: cannot write checkpoint: {exc.strerror}") from None


def _parse(data: bytes) -> Stored:
    header, _, body = data.partition(b"\n")
    text = header.decode("utf-8", "replace")
    if text.startswith(_HEADER) and text[len(_HEADER) :].strip().isdigit():
        return Stored(int(text[len(_HEADER) :]), body)
    # Hand-edited or damaged: version 0 lets `checkpoint reset` replace it; the store reports it.
    return Stored(0, data)
