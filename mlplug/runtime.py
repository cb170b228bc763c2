"""What a command or a flow run opens: the configured store, and the registry on it with
the installed plugins' storage backends and lifecycle hooks.

This is the one place that puts plugins, settings, stores and the registry together; the
store backends and the registry receive what they need and look nothing up themselves.

The store a run uses is the operator's: a URL given to the run (the ``store`` parameter or
``--store``), else ``MLPLUG_STORE`` in the environment of the worker or command, else a
directory under ``MLPLUG_HOME`` for a laptop. A flow run logs which one it uses, and a run
inside Kubernetes refuses a ``file://`` store unless the operator says that path is a volume
every pod shares, because a pod's own disk disappears with the pod.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from mlplug.errors import StoreError
from mlplug.registry import Registry
from mlplug.settings import Settings, get_settings
from mlplug.storage.factory import open_store as open_store_with

if TYPE_CHECKING:
    from mlplug.plugins import Plugins
    from mlplug.storage.base import Store


@dataclass(frozen=True)
class StoreChoice:
    url: str
    #: Where the URL came from, for the run's log and summary.
    source: str

    @property
    def is_local(self) -> bool:
        return urlparse(self.url).scheme.lower() == "file"

    def describe(self) -> str:
        return f"{self.url} (from {self.source})"


def choose_store(url: str | None = None, settings: Settings | None = None) -> StoreChoice:
    """The store URL a command or run uses, and where it came from."""
    settings = settings or get_settings()
    if url:
        return StoreChoice(url, "the run's store parameter")
    if settings.store:
        return StoreChoice(settings.store, "MLPLUG_STORE")
    return StoreChoice(settings.store_url, "the default under MLPLUG_HOME; set MLPLUG_STORE to share it")


def on_kubernetes() -> bool:
    """True inside a Kubernetes pod (the kubelet sets this for every container)."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def check_run_store(choice: StoreChoice, settings: Settings | None = None) -> None:
    """Refuse a store that would lose what a run writes: a ``file://`` store inside a pod."""
    settings = settings or get_settings()
    if choice.is_local and on_kubernetes() and not settings.allow_local_store:
        raise StoreError(
            f"this run is inside a Kubernetes pod but its store is {choice.describe()}: models "
            "written there are lost with the pod. Set MLPLUG_STORE to an s3:// URL in the work "
            "pool's job variables (`mlplug deploy --pool-type kubernetes --store s3://...`), or, if "
            "that path is a volume every pod mounts, set MLPLUG_ALLOW_LOCAL_STORE=true"
        )


def open_store(
    url: str | None = None, *, plugins: Plugins | None = None, settings: Settings | None = None
) -> Store:
    """Open ``url`` (default: the configured store) with the installed backends."""
    from mlplug.plugins import get_plugins

    settings = settings or get_settings()
    backends = {scheme: reg.value for scheme, reg in (plugins or get_plugins()).storage_backends().items()}
    return open_store_with(choose_store(url, settings).url, backends=backends, settings=settings)


def open_registry(url: str | None = None, *, plugins: Plugins | None = None) -> Registry:
    """The registry on ``url`` (default: the configured store), with plugin hooks attached."""
    from mlplug.plugins import get_plugins

    plugins = plugins or get_plugins()
    return Registry(open_store(url, plugins=plugins), hook=plugins.hook)
