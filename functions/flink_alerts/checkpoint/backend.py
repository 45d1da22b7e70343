"""The few primitives a checkpoint store implements. Lease and commit logic lives once, in store.py."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True)
class Stored:
    version: int  # starts at 1, +1 on every successful save
    body: bytes  # JSON document (lease + checkpoint), opaque to the backend


class Backend(ABC):
    """A versioned key-value record with compare-and-swap.

    `key` is already safe for any backend (percent-encoded target name, no '/').
    Unreachable storage or unexpected answers raise CheckpointError with a clear, secret-free message.
    """

    @abstractmethod
    def load(self, key: str) -> Stored | None:
        """The current record, or None when the key was never saved."""

    @abstractmethod
    def save(self, key: str, body: bytes, expected_version: int | None) -> bool:
        """Write version `expected_version + 1` (or 1 when None = must not exist yet).

        Returns False, writing nothing, when the current version is not `expected_version`
        (someone else saved in between). Never overwrites blindly.
        """

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the record; nothing happens when there is none. Unconditional: only for
        records nobody writes any more (a retired target's)."""

    @abstractmethod
    def describe(self) -> str:
        """Where the records live, for messages (no secrets)."""


class OverlayBackend(Backend):
    """Reads through to `base` and keeps every write in memory: a dry run changes nothing."""

    def __init__(self, base: Backend) -> None:
        self.base = base
        self.written: dict[str, Stored | None] = {}  # None: deleted
        self.lock = threading.Lock()

    def load(self, key: str) -> Stored | None:
        with self.lock:
            if key in self.written:
                return self.written[key]
        return self.base.load(key)

    def save(self, key: str, body: bytes, expected_version: int | None) -> bool:
        current = self.load(key)
        with self.lock:
            if (current.version if current else None) != expected_version:
                return False
            self.written[key] = Stored((expected_version or 0) + 1, body)
            return True

    def delete(self, key: str) -> None:
        with self.lock:
            self.written[key] = None

    def describe(self) -> str:
        return f"{self.base.describe()} (dry run: nothing is written)"
