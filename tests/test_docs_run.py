"""The docs' Prefect commands, run as written: the shell blocks marked ``<!-- doc-test:
prefect -->`` in docs/quickstart.md and then docs/operations.md, in order, in one bash
session, against a fresh Prefect server on a random port, from a directory that is not the
checkout. Edit the docs and this test runs the new commands; it holds no copy of them."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mlplug.testing.servers import OFFLINE_ENV, free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- doc-test: prefect -->"


def doc_blocks(path: Path) -> list[str]:
    """The bash blocks that follow the marker, in order."""
    text = path.read_text()
    return re.findall(re.escape(MARKER) + r"\s*```bash\n(.*?)```", text, re.S)


DOCS = [ROOT / "docs" / "quickstart.md", ROOT / "docs" / "operations.md"]


def test_the_docs_have_runnable_prefect_blocks() -> None:
    assert len(doc_blocks(DOCS[0])) >= 2 and len(doc_blocks(DOCS[1])) >= 1
    script = "\n".join(b for doc in DOCS for b in doc_blocks(doc))
    for command in (
        "prefect server start",
        "mlplug deploy",
        "prefect worker start",
        "prefect deployment run",
    ):
        assert command in script


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def _post(url: str, body: dict) -> list:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_the_prefect_sections_run_as_written_on_a_random_port(tmp_path: Path) -> None:
    script = "set -euo pipefail\n" + "\n".join(b for doc in DOCS for b in doc_blocks(doc))
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLPLUG_"))},
        **OFFLINE_ENV,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # the activated venv
        "PREFECT_PORT": str(port),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "MLPLUG_HOME": str(tmp_path / "mlplug-home"),
        "MLPLUG_LOAD_PLUGINS": "fraud",  # what the run needs; the deploy covers what is loaded
    }
    work = tmp_path / "work"
    work.mkdir()
    shell = subprocess.Popen(
        ["bash", "-c", script],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the server and the worker it starts in the background, too
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        out, _ = shell.communicate(timeout=300)
        assert shell.returncode == 0, out
        assert "train-fraud: created" in out and "work pool mlplug-process: created" in out
        assert "train-fraud: unchanged" in out  # operations.md deploys again: nothing changes
        # The UI served on that port calls the API on that port.
        assert _get(f"http://127.0.0.1:{port}/ui-settings")["api_url"] == api
        deadline, state = time.monotonic() + 420, None
        while time.monotonic() < deadline:
            runs = _post(f"{api}/flow_runs/filter", {"flows": {"name": {"any_": ["train"]}}, "limit": 10})
            states = [r["state"]["type"] for r in runs]
            if len(states) == 2 and all(s in ("COMPLETED", "FAILED", "CRASHED") for s in states):
                state = set(states)
                break
            time.sleep(3)
        assert state == {"COMPLETED"}, (state, (work / "prefect-worker.log").read_text()[-4000:])
        store = work / ".mlplug" / "shared-store"
        assert sorted(v.name for v in (store / "fraud" / "models").iterdir()) == ["1", "2"]
        assert not (tmp_path / "mlplug-home" / "store").exists()
    finally:
        if shell.poll() is None:
            shell.kill()
        os.killpg(shell.pid, signal.SIGTERM)
        time.sleep(2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGKILL)
