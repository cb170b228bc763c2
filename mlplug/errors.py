"""Exceptions that reach users. Each message names the thing at fault and what was expected."""

from __future__ import annotations


class MlplugError(Exception):
    """Base class for errors that the CLI prints without a traceback."""


class DataError(MlplugError, ValueError):
    """Input data is missing, unreadable or does not match a task's schema."""


class UnknownTaskError(MlplugError, LookupError):
    """A task type name that no installed plugin registers."""


class DuplicateNameError(MlplugError, ValueError):
    """Two plugins registered the same name in one registry."""


class SettingsError(MlplugError, ValueError):
    """An ``MLPLUG_*`` setting has a value mlplug cannot use; the message names it."""


class ModelLoadError(MlplugError):
    """A registered version's model files do not load; the message names the version."""


class StoreError(MlplugError):
    """The store failed; the message names the store URL."""


class NotFoundError(StoreError, LookupError):
    """A key, version or alias does not exist in the store."""


class PreconditionFailedError(StoreError):
    """A conditional write lost: the key exists (create-only) or changed (compare-and-swap)."""


class CorruptFileError(StoreError):
    """A stored file does not match the sha256 recorded when its version was registered."""


class StoreUnavailableError(StoreError):
    """The store stayed unreachable after retries."""


class AliasConflictError(PreconditionFailedError):
    """An alias moved between reading it and writing it."""


class RayClusterError(MlplugError):
    """The Ray cluster to tune on cannot be joined; the message names its address and what
    to set (address, ``RAY_AUTH_MODE``, the token)."""
