"""Stores: one URL, the same guarantees on every backend.

Open the configured store with :func:`mlplug.runtime.open_store`, which knows the backends
that plugins register; :func:`mlplug.storage.factory.open_store` takes them explicitly.
"""

from mlplug.storage.base import Store

__all__ = ["Store"]
