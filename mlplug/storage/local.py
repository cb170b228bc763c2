"""``file://`` store: a directory tree with the same atomic guarantees as S3.

Writes go to a temporary file in the target directory and are published with ``os.link``
(create-only: fails if the key exists) or ``os.replace`` (overwrite). Conditional writes are
serialised with ``flock`` on a per-key lock file kept outside the key space.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlplug.errors import NotFoundError, PreconditionFailedError, StoreError
from mlplug.settings import Settings
from mlplug.storage.base import Store

_TMP = ".mlplug-tmp-"
_LOCKS = ".mlplug-locks"


class LocalStore(Store):
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.url = self.root.as_uri()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"store {self.url}: cannot create directory: {exc}") from exc

    def _path(self, key: str) -> Path:
        parts = [p for p in key.split("/") if p]
        if not parts or any(p in (".", "..") or p.startswith((_TMP, _LOCKS)) for p in parts):
            raise StoreError(f"store {self.url}: invalid key {key!r}")
        return self.root.joinpath(*parts)

    def get(self, key: str) -> bytes:
        return self.get_with_etag(key)[0]

    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        try:
            data = self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFoundError(f"{self.uri(key)} does not exist") from None
        return data, _etag(data)

    def put(self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None) -> str:
        with self._staged(key) as (tmp, final):
            tmp.write_bytes(data)
            self._publish(key, tmp, final, if_none_match=if_none_match, if_match=if_match)
        return _etag(data)

    def put_file(self, key: str, path: Path, *, if_none_match: bool = False) -> str:
        with self._staged(key) as (tmp, final):
            shutil.copyfile(path, tmp)
            self._publish(key, tmp, final, if_none_match=if_none_match, if_match=None)
        return _file_etag(path)

    @contextlib.contextmanager
    def _staged(self, key: str) -> Iterator[tuple[Path, Path]]:
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f"{_TMP}{uuid.uuid4().hex}")
        try:
            yield tmp, final
        finally:
            tmp.unlink(missing_ok=True)

    def _publish(
        self, key: str, tmp: Path, final: Path, *, if_none_match: bool, if_match: str | None
    ) -> None:
        _fsync(tmp)
        if not (if_none_match or if_match):
            os.replace(tmp, final)
            return
        with self._lock(key):
            if if_none_match:
                try:
                    os.link(tmp, final)  # atomic create-only
                except FileExistsError:
                    raise PreconditionFailedError(f"{self.uri(key)} already exists") from None
                return
            try:
                current = _etag(final.read_bytes())
            except FileNotFoundError:
                raise PreconditionFailedError(f"{self.uri(key)} no longer exists") from None
            if current != if_match:
                raise PreconditionFailedError(f"{self.uri(key)} changed since it was read")
            os.replace(tmp, final)

    @contextlib.contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        lock_path = self.root / _LOCKS / hashlib.sha1(key.encode()).hexdigest()
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def get_file(self, key: str, dest: Path) -> Path:
        src = self._path(key)
        if not src.is_file():
            raise NotFoundError(f"{self.uri(key)} does not exist")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        return dest

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> Iterator[str]:
        base = self._path(prefix) if prefix.strip("/") else self.root  # rejects ".."
        if not base.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(_LOCKS)]
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if not name.startswith(_TMP):
                    yield name if rel == "." else f"{rel}/{name}"

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


def _etag(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _file_etag(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def open_local(url: str, settings: Settings) -> LocalStore:
    parsed = urlparse(url)
    path = unquote(parsed.path)
    # file:relative would resolve against whatever directory the command runs in.
    if parsed.netloc not in ("", "localhost") or not path.startswith("/"):
        raise StoreError(
            f"store URL {url!r}: a file store needs an absolute path, as in file:///absolute/path"
        )
    return LocalStore(Path(path))
