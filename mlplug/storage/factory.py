"""Open a store from its URL with the backend registered for its scheme.

The backends come from the caller (:func:`mlplug.runtime.open_store` passes those the
installed plugins register), so this module never looks plugins up itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from mlplug.errors import StoreError
from mlplug.settings import Settings

if TYPE_CHECKING:
    from mlplug.storage.base import Store

#: ``factory(url, settings) -> Store``; registered per URL scheme.
StoreFactory = Callable[[str, Settings], "Store"]


def open_store(url: str, *, backends: Mapping[str, StoreFactory], settings: Settings) -> Store:
    """Open ``url`` with ``backends[scheme]``; the error names the installed schemes."""
    scheme = urlparse(url).scheme.lower()
    if not scheme:
        raise StoreError(f"store URL {url!r} has no scheme; expected file:///dir or s3://bucket/prefix")
    if scheme not in backends:
        known = ", ".join(f"{s}://" for s in sorted(backends))
        raise StoreError(f"store URL {url!r}: no backend for {scheme}://; installed: {known}")
    return backends[scheme](url, settings)
