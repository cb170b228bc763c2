"""Open a store from its URL through the backends that plugins register."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from mlplug.errors import StoreError
from mlplug.settings import Settings, get_settings

if TYPE_CHECKING:
    from mlplug.plugins import Plugins
    from mlplug.storage.base import Store

#: ``factory(url, settings) -> Store``; registered per URL scheme.
StoreFactory = Callable[[str, Settings], "Store"]


def open_store(
    url: str | None = None, *, settings: Settings | None = None, plugins: Plugins | None = None
) -> Store:
    """Open ``url`` (default: ``MLPLUG_STORE`` or ``<MLPLUG_HOME>/store``)."""
    from mlplug.plugins import get_plugins

    settings = settings or get_settings()
    url = url or settings.store_url
    scheme = urlparse(url).scheme.lower()
    if not scheme:
        raise StoreError(f"store URL {url!r} has no scheme; expected file:///dir or s3://bucket/prefix")
    backends = (plugins or get_plugins()).storage_backends()
    if scheme not in backends:
        known = ", ".join(f"{s}://" for s in sorted(backends))
        raise StoreError(f"store URL {url!r}: no backend for {scheme}://; installed: {known}")
    return backends[scheme].value(url, settings)
