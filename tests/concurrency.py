"""Start threads or child processes together, to race them against each other."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

#: Prepended to every child script: ``wait_for_go()`` is a barrier across the children.
CHILD_PRELUDE = """
import os, sys, time
from pathlib import Path

def wait_for_go():
    Path(os.environ["MLPLUG_TEST_READY"]).touch()
    while not Path(os.environ["MLPLUG_TEST_GO"]).exists():
        time.sleep(0.002)
"""

#: Opens the store named by ``sys.argv[1]`` without loading installed plugins.
OPEN_STORE = """
from mlplug.settings import Settings
if sys.argv[1].startswith("s3://"):
    from mlplug.storage.s3 import open_s3 as _open
else:
    from mlplug.storage.local import open_local as _open
store = _open(sys.argv[1], Settings())
"""


def run_together(
    script: str, argvs: list[list[str]], sync_dir: Path, timeout: float = 60
) -> list[subprocess.CompletedProcess[str]]:
    """Run ``script`` once per argv in a child with the current environment and return
    the results. Children calling ``wait_for_go()`` leave it together; none outlive this."""
    sync_dir.mkdir(parents=True)
    go = sync_dir / "go"
    procs: list[subprocess.Popen[str]] = []
    try:
        for i, argv in enumerate(argvs):
            env = {**os.environ, "MLPLUG_TEST_READY": str(sync_dir / f"ready-{i}"), "MLPLUG_TEST_GO": str(go)}
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", CHILD_PRELUDE + script, *argv],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                )
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and all(p.poll() is None for p in procs):
            if len(list(sync_dir.glob("ready-*"))) == len(procs):
                break
            time.sleep(0.01)
        go.touch()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
