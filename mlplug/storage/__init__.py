"""Stores: one URL, the same guarantees on every backend. Open one with :func:`open_store`."""

from mlplug.storage.base import Store
from mlplug.storage.factory import open_store

__all__ = ["Store", "open_store"]
