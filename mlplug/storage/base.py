"""The store contract: a flat key space with create-only and compare-and-swap writes.

Every backend (``file://``, ``s3://``, or one a plugin registers) gives the same guarantees,
which is what lets the registry keep versions immutable and aliases consistent:

- ``put(key, data, if_none_match=True)`` creates the key or raises ``PreconditionFailedError``;
- ``put(key, data, if_match=etag)`` replaces the key only if it still has that etag;
- a reader never sees a partially written object.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path


class Store(ABC):
    """Keys are POSIX-style relative paths like ``churn/models/3/metadata.json``."""

    url: str

    @abstractmethod
    def get(self, key: str) -> bytes:
        """Return the object's bytes; raise ``NotFoundError`` when absent."""

    @abstractmethod
    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        """Return bytes and the etag to pass to ``put(if_match=...)``."""

    @abstractmethod
    def put(self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None) -> str:
        """Write atomically and return the new etag; conditional writes may raise
        ``PreconditionFailedError``."""

    @abstractmethod
    def put_file(self, key: str, path: Path, *, if_none_match: bool = False) -> str:
        """Upload a local file (streamed for big files) atomically."""

    @abstractmethod
    def get_file(self, key: str, dest: Path) -> Path:
        """Download to ``dest`` (parents created) and return it."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str) -> Iterator[str]:
        """Yield every key under ``prefix`` (recursive), in no promised order."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove a key if it exists. Only used for scratch objects, never versions."""

    def children(self, prefix: str) -> list[str]:
        """Names directly under ``prefix/`` (one path segment), sorted."""
        base = prefix.strip("/")
        base = f"{base}/" if base else ""
        return sorted({key[len(base) :].split("/", 1)[0] for key in self.list(base)})

    def uri(self, key: str) -> str:
        return f"{self.url.rstrip('/')}/{key}"

    def link(self, key: str, expires_seconds: int) -> str:
        """A URL a browser opens to read ``key``. The default is :meth:`uri`; backends whose
        objects are not readable by a browser as they are (S3) sign one that expires."""
        return self.uri(key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
