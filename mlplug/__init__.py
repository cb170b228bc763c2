"""mlplug: end-to-end ML pipelines on Prefect, with task types as pluggy plugins."""

from importlib.metadata import PackageNotFoundError, version

import pluggy

try:
    __version__ = version("mlplug")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

#: Version of the plugin contract. A plugin may declare the major version it was written
#: against as a module attribute ``MLPLUG_API_VERSION``; a different major is not loaded.
API_VERSION = "1.0"

#: Marker for plugin hook implementations: ``@mlplug.hookimpl``.
hookimpl = pluggy.HookimplMarker("mlplug")

__all__ = ["API_VERSION", "__version__", "hookimpl"]
