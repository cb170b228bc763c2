"""Builtin plugin: the ``file://`` and ``s3://`` store backends."""

from __future__ import annotations

from collections.abc import Callable

from mlplug import hookimpl
from mlplug.storage.factory import StoreFactory


@hookimpl
def register_storage_backends(register: Callable[[str, StoreFactory], None]) -> None:
    # Imported lazily so that opening a file store never imports boto3.
    def open_file(url, settings):  # type: ignore[no-untyped-def]
        from mlplug.storage.local import open_local

        return open_local(url, settings)

    def open_s3(url, settings):  # type: ignore[no-untyped-def]
        from mlplug.storage.s3 import open_s3 as _open

        return _open(url, settings)

    register("file", open_file)
    register("s3", open_s3)
