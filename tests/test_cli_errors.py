"""What a user sees when mlplug refuses their input: one clear message, the Prefect run Failed
with that message, and no traceback (`--debug` keeps it). Real `mlplug` processes against a
real Prefect server, on the fraud plugin's loader."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlplug.testing.servers import PrefectServer

pytestmark = pytest.mark.slow

MLPLUG = str(Path(sys.executable).with_name("mlplug"))


def _mlplug(server: PrefectServer, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ, **server.env, "MLPLUG_HOME": str(tmp_path / "home"), "MLPLUG_LOAD_PLUGINS": "fraud",
        "PREFECT_LOGGING_LEVEL": "INFO",
    }  # fmt: skip
    env.pop("MLPLUG_STORE", None)
    return subprocess.run([MLPLUG, *args], capture_output=True, text=True, env=env, timeout=300)


def _runs(server: PrefectServer) -> list:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def read() -> list:
        async with get_client() as client:
            return await client.read_flow_runs()

    with temporary_settings({PREFECT_API_URL: server.api_url}):
        return asyncio.run(read())


CASES = {
    "missing": (None, "file not found"),
    "empty": ("", "file is empty"),
    "no target": ("a,b\n1,2\n", "target column 'is_fraud' not found; found columns ['a', 'b']"),
    "one class": ("amount,is_fraud\n1,0\n2,0\n3,0\n", "has a single class"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_data_gives_one_message_and_a_failed_run_without_traceback(
    prefect_server: PrefectServer, tmp_path: Path, case: str
) -> None:
    content, expected = CASES[case]
    path = tmp_path / "data.csv"
    if content is not None:
        path.write_text(content)
    before = {r.id for r in _runs(prefect_server)}
    out = _mlplug(prefect_server, tmp_path, "train", "fraud", "--data", str(path), "--trials", "0")
    assert out.returncode == 1
    text = out.stdout + out.stderr
    assert "Traceback" not in text, text
    error = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1 and expected in error[0], out.stderr
    (run,) = [r for r in _runs(prefect_server) if r.id not in before]
    assert run.state.type.value == "FAILED" and run.state.message == error[0].removeprefix("error: ")
    assert not (tmp_path / "home" / "store" / "fraud" / "models").exists()

    debug = _mlplug(
        prefect_server, tmp_path, "--debug", "train", "fraud", "--data", str(path), "--trials", "0"
    )
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_a_misspelt_option_is_refused_before_any_run_starts(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    before = len(_runs(prefect_server))
    out = _mlplug(prefect_server, tmp_path, "train", "fraud", "--targt", "x", "--trials", "0")
    assert out.returncode == 2 and "No such option: --targt" in out.stderr and "--target" in out.stderr
    assert "Traceback" not in out.stderr
    out = _mlplug(prefect_server, tmp_path, "train", "fraud", "--target", "x", "--trials", "0")
    assert out.returncode == 1 and "--target: loader options apply to --data" in out.stderr
    out = _mlplug(prefect_server, tmp_path, "train", "fraud", "--data", "x.csv", "--format", "xls")
    assert out.returncode == 1 and "invalid options for task 'fraud': --format" in out.stderr
    assert len(_runs(prefect_server)) == before  # nothing ran, nothing trained
