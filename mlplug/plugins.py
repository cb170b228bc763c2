"""The plugin manager: discovery, allow/deny lists, the API fence and the host registries.

Discovery is lazy: nothing is imported until :func:`get_plugins` is first called. Builtin
plugins (``DEFAULT_PLUGINS``) go through the same registration path as installed ones.
A plugin that fails to import, targets another API major version, or implements a hook that
does not exist is logged with its name and skipped; the others still load.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pluggy

from mlplug import API_VERSION, hookspecs
from mlplug.errors import DuplicateNameError, UnknownTaskError
from mlplug.settings import Settings, get_settings
from mlplug.storage.factory import StoreFactory
from mlplug.task import TaskType

if TYPE_CHECKING:
    from mlplug.reporting.section import ReportSection
    from mlplug.serving.observe import TrafficObserverFactory

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "mlplug"
DEFAULT_PLUGINS: tuple[str, ...] = (
    "mlplug.builtin.storage",
    "mlplug.builtin.report_sections",
    "mlplug.builtin.traffic_profiles",
)
_TASK_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


@dataclass(frozen=True)
class PluginInfo:
    name: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]
    tasks: tuple[str, ...] = ()
    builtin: bool = False


@dataclass(frozen=True)
class SkippedPlugin:
    name: str
    distribution: str | None
    reason: str


T = TypeVar("T")


@dataclass(frozen=True)
class Registration(Generic[T]):
    name: str
    value: T
    plugin: str


@dataclass
class Plugins:
    """A plugin manager plus the registries filled from its ``register_*`` hooks."""

    pm: pluggy.PluginManager
    skipped: list[SkippedPlugin] = field(default_factory=list)
    _dists: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    _builtin: set[str] = field(default_factory=set)
    _cache: dict[str, dict[str, Registration[Any]]] = field(default_factory=dict)

    @property
    def hook(self) -> Any:
        return self.pm.hook

    # -- registering plugins -------------------------------------------------------------

    def add(
        self,
        plugin: object,
        name: str | None = None,
        *,
        distribution: str | None = None,
        version: str | None = None,
        builtin: bool = False,
    ) -> str | None:
        """Register a plugin object (module or instance). Returns its name, or ``None`` when
        it was rejected (the reason is logged and kept in ``skipped``)."""
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        fence = _api_fence(plugin)
        if fence:
            self._skip(name, distribution, fence)
            return None
        try:
            registered = self.pm.register(plugin, name=name)
        except ValueError as exc:  # pluggy: name or object already registered
            self._skip(name, distribution, str(exc))
            return None
        if registered is None:  # blocked by the deny-list
            return None
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(name=name)
            self._skip(name, distribution, _unknown_hooks_reason(exc))
            return None
        self._dists[name] = (distribution, version)
        if builtin:
            self._builtin.add(name)
        self._cache.clear()
        return name

    def remove(self, name: str) -> None:
        self.pm.unregister(name=name)
        self._dists.pop(name, None)
        self._cache.clear()

    def _skip(self, name: str, distribution: str | None, reason: str) -> None:
        log.warning("mlplug plugin %r skipped: %s", name, reason)
        self.skipped.append(SkippedPlugin(name, distribution, reason))

    # -- registries ----------------------------------------------------------------------

    def _collect(
        self, hook_name: str, check: Callable[[str, Any, str], Registration[Any]]
    ) -> dict[str, Registration[Any]]:
        """Call a ``register_*`` hook one implementation at a time so that every
        registration is attributed to its plugin and one failing plugin does not stop the
        others."""
        if hook_name in self._cache:
            return self._cache[hook_name]
        found: dict[str, Registration[Any]] = {}
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():  # registration order

            def register(*args: Any, _plugin: str = impl.plugin_name) -> None:
                reg = check(_plugin, *args)
                if reg.name in found:
                    raise DuplicateNameError(
                        f"{hook_name}: {reg.name!r} is registered by plugin {found[reg.name].plugin!r}"
                        f" and again by plugin {_plugin!r}"
                    )
                found[reg.name] = reg

            try:
                impl.function(**({"register": register} if "register" in impl.argnames else {}))
            except Exception as exc:  # one faulty plugin must not hide the others
                log.warning("mlplug plugin %r failed in %s: %s", impl.plugin_name, hook_name, exc)
                self.skipped.append(SkippedPlugin(impl.plugin_name, None, f"{hook_name}: {exc}"))
        self._cache[hook_name] = found
        return found

    def tasks(self) -> dict[str, Registration[TaskType]]:
        return self._collect("register_tasks", _check_task)

    def task(self, name: str) -> TaskType:
        """The task type called ``name``; the error lists the installed ones."""
        tasks = self.tasks()
        if name not in tasks:
            installed = ", ".join(sorted(tasks)) or "none"
            raise UnknownTaskError(
                f"unknown task type {name!r}; installed task types: {installed}. "
                "Install a plugin that provides it (see `mlplug plugins`)."
            )
        return tasks[name].value

    def storage_backends(self) -> dict[str, Registration[StoreFactory]]:
        return self._collect("register_storage_backends", _check_backend)

    def report_sections(self) -> dict[str, Registration[ReportSection]]:
        return self._collect("register_report_sections", _check_section)

    def traffic_observers(self) -> dict[str, Registration[TrafficObserverFactory]]:
        return self._collect("register_traffic_observers", _check_observer)

    def infos(self) -> list[PluginInfo]:
        tasks_by_plugin: dict[str, list[str]] = {}
        for reg in self.tasks().values():
            tasks_by_plugin.setdefault(reg.plugin, []).append(reg.name)
        infos = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:
                continue
            dist, version = self._dists.get(name, (None, None))
            hooks = tuple(sorted(h.name for h in self.pm.get_hookcallers(plugin) or ()))
            infos.append(
                PluginInfo(
                    name=name,
                    distribution=dist,
                    version=version,
                    hooks=hooks,
                    tasks=tuple(sorted(tasks_by_plugin.get(name, ()))),
                    builtin=name in self._builtin,
                )
            )
        return sorted(infos, key=lambda i: (not i.builtin, i.name))


def _check_task(plugin: str, task: Any) -> Registration[TaskType]:
    if not isinstance(task, TaskType):
        raise TypeError(f"register() expects a mlplug.task.TaskType, got {type(task).__name__}")
    name = getattr(task, "name", None)
    if not isinstance(name, str) or not _TASK_NAME.match(name):
        raise ValueError(f"task name {name!r} must match {_TASK_NAME.pattern}")
    return Registration(name, task, plugin)


def _check_backend(plugin: str, scheme: Any, factory: Any) -> Registration[StoreFactory]:
    if not isinstance(scheme, str) or not scheme.isidentifier() or not callable(factory):
        raise TypeError("register() expects (scheme: str, factory: callable)")
    return Registration(scheme.lower(), factory, plugin)


def _check_section(plugin: str, section: Any) -> Registration[ReportSection]:
    # Imported here: the reporting package pulls in pandas and the registry, which plugin
    # discovery does not need.
    from mlplug.reporting.section import REPORT_KINDS, ReportSection

    if not isinstance(section, ReportSection):
        raise TypeError(f"register() expects a mlplug.reporting.ReportSection, got {type(section).__name__}")
    name = getattr(section, "name", None)
    if not isinstance(name, str) or not _TASK_NAME.match(name):
        raise ValueError(f"report section name {name!r} must match {_TASK_NAME.pattern}")
    unknown = set(section.applies_to) - REPORT_KINDS
    if unknown:
        raise ValueError(f"report section {name!r}: unknown report kinds {sorted(unknown)}")
    return Registration(name, section, plugin)


def _check_observer(plugin: str, name: Any, factory: Any) -> Registration[TrafficObserverFactory]:
    if not isinstance(name, str) or not _TASK_NAME.match(name) or not callable(factory):
        raise TypeError(f"register() expects (name: str matching {_TASK_NAME.pattern}, factory: callable)")
    return Registration(name, factory, plugin)


def _unknown_hooks_reason(exc: pluggy.PluginValidationError) -> str:
    """Name each implementation without a spec and the closest real hook, if any: the usual
    cause is a typo (``register_task``)."""
    known = [name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "mlplug_spec")]
    unknown = sorted(
        name
        for name in dir(exc.plugin)
        if not name.startswith("_")
        and hasattr(getattr(exc.plugin, name, None), "mlplug_impl")
        and name not in known
    )
    if not unknown:
        return f"implements an unknown hook: {exc}"
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        parts.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return f"implements an unknown hook: {', '.join(parts)}; mlplug's hooks are {', '.join(sorted(known))}"


def _api_fence(plugin: object) -> str | None:
    wanted = getattr(plugin, "MLPLUG_API_VERSION", None)
    if wanted is None:
        return None
    if str(wanted).split(".")[0] != API_VERSION.split(".")[0]:
        return f"written for plugin API {wanted}, this mlplug provides {API_VERSION}"
    return None


def _names(value: str | None) -> set[str]:
    return {n.strip() for n in (value or "").split(",") if n.strip()}


def new_plugins(
    *,
    load_entry_points: bool = True,
    settings: Settings | None = None,
    defaults: Iterable[str] = DEFAULT_PLUGINS,
) -> Plugins:
    """A fresh manager with the builtin plugins and (unless disabled) installed ones."""
    settings = settings or get_settings()
    pm = pluggy.PluginManager("mlplug")
    pm.add_hookspecs(hookspecs)
    plugins = Plugins(pm)
    for module_name in defaults:
        plugins.add(importlib.import_module(module_name), module_name, builtin=True)
    if load_entry_points:
        load_entry_point_plugins(plugins, settings)
    return plugins


def load_entry_point_plugins(plugins: Plugins, settings: Settings) -> None:
    allow = _names(settings.load_plugins) if settings.load_plugins is not None else None
    deny = _names(settings.disable_plugins)
    for name in deny:
        plugins.pm.set_blocked(name)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist else None
        version = ep.dist.version if ep.dist else None
        if allow is not None and ep.name not in allow:
            log.info("mlplug plugin %r not loaded: not in MLPLUG_LOAD_PLUGINS", ep.name)
            continue
        if ep.name in deny:
            log.info("mlplug plugin %r not loaded: in MLPLUG_DISABLE_PLUGINS", ep.name)
            continue
        module = _load(ep, plugins, dist)
        if module is not None:
            plugins.add(module, ep.name, distribution=dist, version=version)


def _load(ep: EntryPoint, plugins: Plugins, dist: str | None) -> ModuleType | object | None:
    try:
        return ep.load()
    except Exception as exc:  # any import-time failure of a third-party package
        plugins._skip(ep.name, dist, f"failed to import {ep.value!r}: {type(exc).__name__}: {exc}")
        return None


_lock = threading.Lock()
_plugins: Plugins | None = None


def get_plugins() -> Plugins:
    """The process-wide manager, created on first use."""
    global _plugins
    with _lock:
        if _plugins is None:
            _plugins = new_plugins()
        return _plugins


@contextlib.contextmanager
def use_plugins(plugins: Plugins) -> Iterator[Plugins]:
    """Make ``plugins`` the process-wide manager inside the block (tests, embedding)."""
    global _plugins
    with _lock:
        saved, _plugins = _plugins, plugins
    try:
        yield plugins
    finally:
        with _lock:
            _plugins = saved


def reset_plugins() -> None:
    """Forget the process-wide manager (tests; after installing a plugin at runtime)."""
    global _plugins
    with _lock:
        _plugins = None
