"""The plugin manager: registries, duplicate names, fences, allow/deny lists."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

import mlplug
from mlplug.errors import DuplicateNameError, UnknownTaskError
from mlplug.plugins import Plugins, get_plugins, new_plugins
from mlplug.settings import Settings
from tests.toy_task import ToyTask


class ToyPlugin:
    def __init__(self, *names: str) -> None:
        self.names = names

    @mlplug.hookimpl
    def register_tasks(self, register):
        for name in self.names:
            register(ToyTask(name))


def test_builtin_storage_plugin_is_registered_like_any_other(mlplug_plugins: Plugins) -> None:
    infos = {i.name: i for i in mlplug_plugins.infos()}
    builtin = infos["mlplug.builtin.storage"]
    assert builtin.builtin
    assert builtin.hooks == ("register_storage_backends",)
    backends = mlplug_plugins.storage_backends()
    assert set(backends) == {"file", "s3"}
    assert backends["file"].plugin == "mlplug.builtin.storage"


def test_register_tasks_attributes_each_task_to_its_plugin(mlplug_plugins, register_plugin) -> None:
    register_plugin(ToyPlugin("alpha", "beta"), "toys")
    register_plugin(ToyPlugin("gamma"), "more-toys")
    tasks = mlplug_plugins.tasks()
    assert {n: r.plugin for n, r in tasks.items()} == {
        "alpha": "toys",
        "beta": "toys",
        "gamma": "more-toys",
    }
    assert get_plugins() is mlplug_plugins  # the fixture installs it process-wide
    infos = {i.name: i for i in mlplug_plugins.infos()}
    assert infos["toys"].tasks == ("alpha", "beta")
    assert infos["toys"].hooks == ("register_tasks",)


def test_duplicate_task_name_is_rejected_naming_both_plugins(mlplug_plugins, register_plugin, caplog):
    register_plugin(ToyPlugin("alpha"), "first")
    register_plugin(ToyPlugin("alpha"), "second")
    with caplog.at_level(logging.WARNING):
        tasks = mlplug_plugins.tasks()
    assert tasks["alpha"].plugin == "first"
    message = " ".join(s.reason for s in mlplug_plugins.skipped)
    assert "'alpha'" in message and "'first'" in message and "'second'" in message
    assert "second" in caplog.text


def test_register_callback_raises_duplicate_error_to_the_plugin(mlplug_plugins, register_plugin) -> None:
    seen: list[Exception] = []

    class Twice:
        @mlplug.hookimpl
        def register_tasks(self, register):
            register(ToyTask("same"))
            try:
                register(ToyTask("same"))
            except DuplicateNameError as exc:
                seen.append(exc)

    register_plugin(Twice(), "twice")
    assert set(mlplug_plugins.tasks()) == {"same"}
    assert len(seen) == 1 and "twice" in str(seen[0])


def test_register_rejects_wrong_types_and_bad_names(mlplug_plugins, register_plugin) -> None:
    class Bad:
        @mlplug.hookimpl
        def register_tasks(self, register):
            register("not a task")

    class BadName:
        @mlplug.hookimpl
        def register_tasks(self, register):
            register(ToyTask("Not Valid"))

    register_plugin(Bad(), "bad")
    register_plugin(BadName(), "badname")
    register_plugin(ToyPlugin("fine"), "fine")
    assert set(mlplug_plugins.tasks()) == {"fine"}
    reasons = {s.name: s.reason for s in mlplug_plugins.skipped}
    assert "TaskType" in reasons["bad"]
    assert "must match" in reasons["badname"]


def test_unknown_task_lists_installed_ones(mlplug_plugins, register_plugin) -> None:
    register_plugin(ToyPlugin("alpha", "beta"), "toys")
    with pytest.raises(UnknownTaskError, match=r"'nope'.*installed task types: alpha, beta"):
        mlplug_plugins.task("nope")


def test_hook_implementation_without_a_spec_is_skipped(mlplug_plugins, caplog) -> None:
    class Typo:
        @mlplug.hookimpl
        def register_taks(self, register):  # misspelt on purpose
            pass

    with caplog.at_level(logging.WARNING):
        assert mlplug_plugins.add(Typo(), "typo") is None
    assert not mlplug_plugins.pm.has_plugin("typo")
    assert "unknown hook" in mlplug_plugins.skipped[-1].reason
    assert "typo" in caplog.text


def test_unknown_hook_suggests_the_closest_real_one(mlplug_plugins) -> None:
    class Typos:
        @mlplug.hookimpl
        def register_task(self, register):  # one letter short of register_tasks
            pass

        @mlplug.hookimpl
        def frobnicate(self):  # like nothing mlplug calls
            pass

    assert mlplug_plugins.add(Typos(), "typos") is None
    reason = mlplug_plugins.skipped[-1].reason
    assert "'register_task' (did you mean 'register_tasks'?)" in reason
    assert "'frobnicate'" in reason and "'frobnicate' (did you mean" not in reason


def test_api_version_fence(mlplug_plugins) -> None:
    future = SimpleNamespace(MLPLUG_API_VERSION="2.0", __name__="future")
    current = SimpleNamespace(MLPLUG_API_VERSION="1", __name__="current")
    assert mlplug_plugins.add(future, "future") is None
    assert "plugin API 2.0" in mlplug_plugins.skipped[-1].reason
    assert mlplug_plugins.add(current, "current") == "current"


def test_opt_in_arguments_keep_old_plugins_working(mlplug_plugins, register_plugin, tmp_path) -> None:
    calls: list[str] = []

    class OnlyTask:  # accepts a subset of the spec's arguments
        @mlplug.hookimpl
        def after_register(self, task):
            calls.append(task)

    register_plugin(OnlyTask(), "subset")
    mlplug_plugins.hook.after_register(task="t", version=None, store=None)
    assert calls == ["t"]


def _fake_entry_points(monkeypatch: pytest.MonkeyPatch, modules: dict[str, object]) -> None:
    class EP:
        def __init__(self, name: str, obj: object) -> None:
            self.name, self._obj, self.value, self.dist = name, obj, f"{name}_mod", None

        def load(self):
            if isinstance(self._obj, Exception):
                raise self._obj
            return self._obj

    monkeypatch.setattr("mlplug.plugins.entry_points", lambda group: [EP(n, o) for n, o in modules.items()])


def test_allow_and_deny_lists(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    mods = {n: ToyPlugin(n) for n in ("one", "two", "three")}
    _fake_entry_points(monkeypatch, mods)
    only = new_plugins(settings=Settings(home=tmp_path, load_plugins="one,three"))
    assert set(only.tasks()) == {"one", "three"}
    deny = new_plugins(settings=Settings(home=tmp_path, disable_plugins="two"))
    assert set(deny.tasks()) == {"one", "three"}
    none = new_plugins(settings=Settings(home=tmp_path, load_plugins=""))
    assert set(none.tasks()) == set()
    assert set(none.storage_backends()) == {"file", "s3"}  # builtins always load


def test_plugin_that_fails_to_import_is_skipped(monkeypatch, tmp_path, caplog) -> None:
    _fake_entry_points(monkeypatch, {"broken": ImportError("no module named x"), "ok": ToyPlugin("ok")})
    with caplog.at_level(logging.WARNING):
        plugins = new_plugins(settings=Settings(home=tmp_path))
    assert set(plugins.tasks()) == {"ok"}
    assert plugins.skipped[0].name == "broken"
    assert "ImportError: no module named x" in plugins.skipped[0].reason
    assert "'broken'" in caplog.text


def test_discovery_is_lazy() -> None:
    import subprocess
    import sys

    code = (
        "import mlplug.plugins, mlplug.cli, sys; print('mlplug_fraud' in sys.modules, 'boto3' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
