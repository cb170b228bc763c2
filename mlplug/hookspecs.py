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
    from mlplug.reporting.section import ReportSection
    from mlplug.serving.observe import TrafficObserverFactory
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
def register_report_sections(register: Callable[[ReportSection], None]) -> None:
    """Contribute sections to the HTML reports of training, refit and monitor runs.

    Call ``register(section)`` once per section, with an instance of a
    :class:`mlplug.reporting.ReportSection` subclass (``name``, ``title``, ``order``,
    ``applies_to`` and ``render(ctx) -> SectionOutput | None``). Names must be unique
    across all plugins, as for ``register_tasks``. ``render`` receives every run of every
    task: return ``None`` for runs the section has nothing to say about (check
    ``ctx.task_type``). A section that raises is shown as an error box naming it; the rest
    of the report still renders. The builtin sections are registered through this hook too.
    """


@hookspec
def register_traffic_observers(register: Callable[[str, TrafficObserverFactory], None]) -> None:
    """Contribute observers of the traffic that model servers (``mlplug serve``) answer.

    Call ``register(name, factory)``. When a server starts, mlplug calls
    ``factory(context)`` with a :class:`mlplug.serving.observe.ServingContext` (task name and
    type, the model version loaded, its schema, the store); return a
    :class:`~mlplug.serving.observe.TrafficObserver`, or ``None`` to stay out of this server.
    Its ``observe(batch)`` receives every answered ``/predict`` request as a
    :class:`~mlplug.serving.observe.TrafficBatch` (validated rows, probabilities, labels,
    model version, timings) on a background thread, never on the request path: when
    observers fall behind, the bounded queue drops batches and counts them in
    ``mlplug_observer_dropped_total``. ``close()`` is called once at shutdown, after the
    queue has drained. Names are unique across plugins. An exception in a factory leaves that
    observer out; one in ``observe`` is logged and counted; neither reaches a client.
    """


@hookspec
def after_register(task: str, version: ModelVersion, store: Store) -> None:
    """Called after a model version has been committed to the store.

    ``version`` is complete and immutable when this runs. Exceptions are logged and do not
    undo the registration. Runs once per version, also when a registration is retried after
    its commit's answer was lost (the retry runs it if the committing attempt did not).
    """


@hookspec
def after_promote(
    task: str, alias: str, version: ModelVersion, previous: AliasRecord | None, store: Store
) -> None:
    """Called after an alias (e.g. ``champion``) has moved to ``version``.

    ``previous`` is the alias record it replaced, or ``None`` for the first promotion.
    Exceptions are logged and do not undo the move.
    """
