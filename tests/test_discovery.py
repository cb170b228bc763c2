"""Discovery through a real install: a throwaway plugin distribution is built, installed with
``pip install --target`` and found by ``mlplug plugins`` in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.installs import pip_install_target

MLPLUG = str(Path(sys.executable).with_name("mlplug"))

GOOD = """
import mlplug
from mlplug.task import SearchSpace, TaskType

MLPLUG_API_VERSION = "1"

class Echo(TaskType):
    name = "echo"
    description = "throwaway task from a pip-installed plugin"
    def load(self, url, options): raise NotImplementedError
    def synthesize(self, rows, seed=0, drift=0.0): raise NotImplementedError
    def create_model(self, schema, params): raise NotImplementedError
    def create_baseline(self, schema): raise NotImplementedError
    def load_model(self, path): raise NotImplementedError
    def search_space(self): return SearchSpace(params={"a": 1})
    def evaluate(self, data, proba): raise NotImplementedError
    def business_value(self, data, proba, metrics): raise NotImplementedError
    def explain(self, model, data, rows=100): raise NotImplementedError

@mlplug.hookimpl
def register_tasks(register):
    register(Echo())
"""

BROKEN = "raise RuntimeError('this plugin is broken on purpose')\n"


def _make_dist(root: Path, dist: str, module: str, source: str) -> Path:
    src = root / dist
    (src / module).mkdir(parents=True)
    (src / module / "__init__.py").write_text(textwrap.dedent(source))
    (src / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["setuptools>=69"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{dist}"
            version = "0.3.1"

            [project.entry-points.mlplug]
            {module} = "{module}"
            """
        )
    )
    return src


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dists")
    target = root / "site"
    for dist, module, source in [
        ("mlplug-echo", "mlplug_echo", GOOD),
        ("mlplug-broken", "mlplug_broken", BROKEN),
    ]:
        pip_install_target(target, _make_dist(root, dist, module, source))
    return target


def _mlplug(target: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": str(target), **env}
    for key in ("MLPLUG_LOAD_PLUGINS", "MLPLUG_DISABLE_PLUGINS"):
        if key not in env:
            environ.pop(key, None)
    return subprocess.run([MLPLUG, *args], capture_output=True, text=True, env=environ, timeout=120)


def test_pip_installed_plugin_appears_and_broken_one_is_skipped(installed: Path) -> None:
    out = _mlplug(installed, "plugins", "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    plugins = {p["name"]: p for p in payload["plugins"]}
    echo = plugins["mlplug_echo"]
    assert echo["distribution"] == "mlplug-echo"
    assert echo["version"] == "0.3.1"
    assert echo["tasks"] == ["echo"]
    assert echo["hooks"] == ["register_tasks"]
    skipped = {s["name"]: s["reason"] for s in payload["skipped"]}
    assert "broken on purpose" in skipped["mlplug_broken"]
    assert "mlplug_broken" in out.stderr  # the warning names the plugin


def test_human_listing_shows_distribution_tasks_and_hooks(installed: Path) -> None:
    out = _mlplug(installed, "plugins")
    assert out.returncode == 0, out.stderr
    assert "mlplug_echo  (mlplug-echo 0.3.1)" in out.stdout
    assert "tasks: echo" in out.stdout
    assert "skipped mlplug_broken" in out.stderr


def test_deny_list_hides_an_installed_plugin(installed: Path) -> None:
    out = _mlplug(installed, "plugins", "--json", MLPLUG_DISABLE_PLUGINS="mlplug_echo,mlplug_broken")
    names = {p["name"] for p in json.loads(out.stdout)["plugins"]}
    assert "mlplug_echo" not in names
    assert json.loads(out.stdout)["skipped"] == []


def test_allow_list_loads_only_named_plugins(installed: Path) -> None:
    out = _mlplug(installed, "tasks", MLPLUG_LOAD_PLUGINS="mlplug_echo")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[0].startswith("echo  [mlplug_echo]")
    assert "fraud" not in out.stdout


def test_unknown_task_error_lists_installed_tasks(installed: Path) -> None:
    out = _mlplug(installed, "models", "list", "nope", MLPLUG_LOAD_PLUGINS="mlplug_echo")
    assert out.returncode == 1
    assert "unknown task type 'nope'; installed task types: echo" in out.stderr
    assert "Traceback" not in out.stderr
