"""The plugin contract. Every hook mlplug calls is specified here, and each docstring is
that hook's reference documentation (``docs/plugin-guide.md`` lists them all).

Hooks are always called with keyword arguments. An implementation may accept any subset of
a spec's arguments, so specs grow by adding arguments without breaking older plugins.
None of these hooks is ``firstresult``: every implementation is called.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from mlplug.registry import AliasRecord, ModelVersion
    from mlplug.storage.base import Store
    from mlplug.storage.factory import StoreFactory
    from mlplug.task import TaskType

hookspec = pluggy.HookspecMarker("mlplug")


@hookspec
def register_tasks(register: Callable[[TaskType], None]) -> None:
    """Contribute task types.

    Call ``register(task)`` once per task type, with an instance of a
    :class:`mlplug.task.TaskType` subclass. Names must be unique across all plugins:
    registering a name already taken raises ``DuplicateNameError`` naming both plugins;
    mlplug logs it and keeps the first registration.
    """


@hookspec
def register_storage_backends(register: Callable[[str, StoreFactory], None]) -> None:
    """Contribute store backends for URL schemes.

    Call ``register(scheme, factory)`` where ``factory(url, settings) -> Store`` opens a
    store for a URL such as ``scheme://bucket/prefix``. The builtin plugin registers
    ``file`` and ``s3``. A backend must honour create-only (``if_none_match``) and
    compare-and-swap (``if_match``) writes; :mod:`mlplug.testing.store_contract` checks it.
    """


@hookspec
def after_register(task: str, version: ModelVersion, store: Store) -> None:
    """Called after a model version has been committed to the store.

    ``version`` is complete and immutable when this runs. Exceptions are logged and do not
    undo the registration.
    """


@hookspec
def after_promote(
    task: str, alias: str, version: ModelVersion, previous: AliasRecord | None, store: Store
) -> None:
    """Called after an alias (e.g. ``champion``) has moved to ``version``.

    ``previous`` is the alias record it replaced, or ``None`` for the first promotion.
    Exceptions are logged and do not undo the move.
    """
