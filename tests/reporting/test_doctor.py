"""Environment checks: key packages, pip check, outdated packages, and ``mlplug doctor``."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from mlplug.cli import app
from mlplug.plugins import PluginInfo
from mlplug.reporting import doctor

runner = CliRunner()


def fake(code: int, out: str = "", err: str = "", probe: int = 0):
    """A pip runner: ``probe`` is the exit code of the index lookup, the rest answer the
    real command."""
    calls: list[list[str]] = []

    def run(args, timeout):
        calls.append(list(args))
        if "index" in args:
            return probe, "pip (26.3)", "" if probe == 0 else "ERROR: No matching distribution found for pip"
        return code, out, err

    run.calls = calls  # type: ignore[attr-defined]
    return run


def test_pip_check_reports_each_conflict_and_the_packages_involved() -> None:
    out = (
        "tool 1.0 has requirement numpy<2, but you have numpy 2.1.0.\n"
        "other 0.3 requires missing-thing, which is not installed.\n"
    )
    check = doctor.pip_check(run=fake(1, out))
    assert not check.ok and check.error is None
    assert len(check.problems) == 2
    assert check.involved() == {"tool", "numpy", "other", "missing-thing"}
    assert doctor.pip_check(run=fake(0, "No broken requirements found.\n")).ok


def test_pip_check_that_cannot_finish_says_so() -> None:
    def hang(args, timeout):
        raise subprocess.TimeoutExpired(args, timeout)

    check = doctor.pip_check(run=hang, timeout=3)
    assert not check.ok and check.error == "pip check did not finish within 3 s"
    broken = doctor.pip_check(run=fake(2, "", "No module named pip"))
    assert broken.error == "No module named pip"


def test_pip_check_runs_in_this_interpreter() -> None:
    check = doctor.pip_check()
    assert check.error is None
    done = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    assert check.ok == (done.returncode == 0)


def test_outdated_packages_from_a_reachable_index() -> None:
    rows = [{"name": "numpy", "version": "2.0.0", "latest_version": "2.3.1", "latest_filetype": "wheel"}]
    run = fake(0, json.dumps(rows))
    check = doctor.outdated_packages(run=run)
    assert check.reachable and check.message == "package index reachable; 1 outdated package(s)"
    assert check.packages == [doctor.Outdated("numpy", "2.0.0", "2.3.1")]
    # pip is told not to retry, so an unreachable index answers within the timeout.
    probe, listing = run.calls  # type: ignore[attr-defined]
    assert probe[3:6] == ["index", "versions", "pip"] and "--outdated" in listing
    assert probe[probe.index("--retries") + 1] == "0"


def test_outdated_packages_when_the_index_does_not_answer() -> None:
    def hang(args, timeout):
        raise subprocess.TimeoutExpired(args, timeout)

    check = doctor.outdated_packages(run=hang, timeout=20)
    assert not check.reachable and check.message == "package index not reachable: no answer within 10 s"
    refused = doctor.outdated_packages(run=fake(0, "[]", probe=1))
    assert not refused.reachable and "No matching distribution found for pip" in refused.message


@pytest.fixture
def unreachable_index(monkeypatch: pytest.MonkeyPatch) -> str:
    """pip configured with one index, on a loopback port where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/simple"
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # ignore site and user pip config
    monkeypatch.setenv("PIP_INDEX_URL", url)
    for key in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX"):
        monkeypatch.delenv(key, raising=False)
    return url


def test_outdated_packages_against_an_unreachable_index_for_real(unreachable_index) -> None:
    check = doctor.outdated_packages()
    assert not check.reachable
    assert check.message.startswith("package index not reachable")


def test_key_packages_are_the_requirements_of_mlplug_and_its_plugins() -> None:
    plugin = PluginInfo("p", distribution="pytest", version="8", hooks=())
    keys = {k.name: k for k in doctor.key_packages([plugin], {"numpy": "1.26.0", "Pluggy": "1.6.0"})}
    assert keys["numpy"].satisfied is False and keys["numpy"].spec == ">=2.0"
    assert keys["pluggy"].satisfied is True and "mlplug" in keys["pluggy"].needed_by
    assert keys["pandas"].installed is None and keys["pandas"].satisfied is False
    assert "pytest" in keys["pluggy"].needed_by  # a plugin distribution's requirements count too
    assert "ruff" not in keys  # dev extras are not what the code runs on


def test_mlplug_doctor_prints_the_environment_checks(mlplug_plugins) -> None:
    result = runner.invoke(app, ["doctor", "--no-index"])
    check = doctor.pip_check()
    assert result.exit_code == (0 if check.ok else 1), result.output
    out = result.output
    assert f"Python    {sys.version.split()[0]}" in out
    assert platform.platform() in out
    assert "mlplug.builtin.report_sections (builtin)" in out
    assert "numpy" in out and "key packages" in out
    assert ("no broken requirements" in out) if check.ok else (f"{len(check.problems)} conflict(s)" in out)
    assert "outdated packages: not checked (--no-index)" in out


def test_mlplug_doctor_says_when_the_index_is_not_reachable(mlplug_plugins, unreachable_index) -> None:
    result = runner.invoke(app, ["doctor", "--json"])
    payload = json.loads(result.output)
    assert payload["environment"]["python"] == sys.version.split()[0]
    assert payload["outdated"]["reachable"] is False
    assert "not reachable" in payload["outdated"]["message"]
    assert {p["name"] for p in payload["plugins"]} >= {"mlplug.builtin.report_sections"}
