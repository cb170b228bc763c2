"""``mlplug new-plugin``: the generated distribution of each kind installs (``pip install
--target``), is ruff-clean, passes its own tests and trains with ``mlplug train`` at once."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlplug.cli import app
from mlplug.errors import MlplugError
from mlplug.scaffold import PluginNames, new_plugin
from mlplug.testing.servers import OFFLINE_ENV, PrefectServer
from tests.installs import pip_install_target

BIN = Path(sys.executable).parent
PLUGINS = {"tabular": "churn", "text": "support_tickets"}
RAY_NOISE = (
    "Token authentication is enabled",
    "TensorBoard",
    "View detailed results",
    "Configuration for experiment",
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("new-plugin")
    return {kind: new_plugin(name, kind, root / name) for kind, name in PLUGINS.items()}


@pytest.fixture(scope="module")
def site(generated: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    pip_install_target(target, *generated.values())
    return target


def _env(site: Path, home: Path, **extra: str) -> dict[str, str]:
    """A child's environment: the installed plugins on PYTHONPATH, a fresh MLPLUG_HOME, and
    none of this test run's plugin or store settings."""
    kept = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    return {**kept, **OFFLINE_ENV, "PYTHONPATH": str(site), "MLPLUG_HOME": str(home), **extra}


_NOT_INHERITED = ("MLPLUG_STORE", "MLPLUG_LOAD_PLUGINS", "MLPLUG_DISABLE_PLUGINS", "PYTEST_ADDOPTS")


def test_the_distribution_is_complete_and_stands_alone(generated: dict[str, Path]) -> None:
    for kind, path in generated.items():
        names = PluginNames.of(PLUGINS[kind])
        meta = tomllib.loads((path / "pyproject.toml").read_text())
        assert meta["project"]["name"] == names.dist
        assert meta["project"]["entry-points"]["mlplug"] == {names.name: names.module}
        assert meta["project"]["dependencies"] == ["mlplug", "scikit-learn>=1.5"]
        package = {p.name for p in (path / names.module).iterdir()}
        assert {"task.py", "synthetic.py", "loader.py", "model.py", "search.py", "metrics.py"} <= package
        assert {"value.py", "explain.py", "report.py", "__init__.py"} <= package
        assert (path / "tests" / "test_plugin.py").is_file() and (path / "README.md").is_file()
        text = "\n".join(p.read_text() for p in path.rglob("*") if p.is_file())
        assert "mlplug_fraud" not in text and "mlplug_convqa" not in text  # no first-party plugin


def test_generated_code_is_ruff_clean(generated: dict[str, Path]) -> None:
    for path in generated.values():
        done = subprocess.run([str(BIN / "ruff"), "check", "."], cwd=path, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("kind", sorted(PLUGINS))
def test_generated_plugin_passes_its_own_tests(kind, generated, site, tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=generated[kind],
        env=_env(site, tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "4 passed" in done.stdout


@pytest.mark.parametrize("kind", sorted(PLUGINS))
def test_generated_plugin_trains_with_the_cli(kind, site, tmp_path, prefect_server: PrefectServer) -> None:
    name = PLUGINS[kind]
    home = tmp_path / "home"
    env = _env(site, home, MLPLUG_LOAD_PLUGINS=name, **prefect_server.env)
    done = subprocess.run(
        [str(BIN / "mlplug"), "train", name, "--trials", "2", "--rows", "800"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert f"{name}: version 1" in done.stdout and "promoted to champion" in done.stdout
    assert f"tuning {name}: 100% (2/2 trials" in done.stderr
    for noise in RAY_NOISE:
        assert noise not in output, noise
    assert list((home / "ray").glob("session_*/logs")), "Ray's scratch is not under MLPLUG_HOME"


def test_names_and_existing_directories_are_checked(tmp_path: Path) -> None:
    with pytest.raises(MlplugError, match="must start with a lower-case letter"):
        new_plugin("Churn", "tabular", tmp_path / "a")
    with pytest.raises(MlplugError, match="unknown plugin kind 'images'; choose one of tabular, text"):
        new_plugin("churn", "images", tmp_path / "b")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    out = CliRunner().invoke(app, ["new-plugin", "churn", "--dir", str(taken)])
    assert out.exit_code != 0 and "already exists and is not an empty directory" in str(out.exception)
    assert [p.name for p in taken.iterdir()] == ["notes.txt"]  # nothing overwritten, nothing added


def test_the_templates_ship_in_the_wheel(tmp_path: Path) -> None:
    project = Path(__file__).parents[1]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(project),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("mlplug-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for layer in (
        "common/package/task.py.tmpl",
        "tabular/package/model.py.tmpl",
        "text/package/model.py.tmpl",
    ):
        assert f"mlplug/scaffold/templates/{layer}" in names
