"""The pod sandbox with the code under one of the pod's emptyDir volumes (a clone in /tmp,
where a pod mounts a fresh /tmp): the code stays visible and read-only, the volume is fresh
and writable, and what the pod writes there is reported without the code."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mlplug.testing import pod_sandbox

UNAVAILABLE = pod_sandbox.unavailable()
pytestmark = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"no pod sandbox: {UNAVAILABLE}")

#: Reads the checkout's marker, fails to write into the checkout, writes into the volume.
SCRIPT = """
import pathlib, sys
print("marker:", pathlib.Path("marker.txt").read_text())
try:
    pathlib.Path("written-into-code.txt").write_text("no")
except OSError as exc:
    print("code is read-only:", exc.strerror)
volume = pathlib.Path(sys.argv[1])
print("volume holds:", sorted(p.name for p in volume.iterdir()))
(volume / "scratch.txt").write_text("yes")
"""


def _job(volume: Path, command: list[str]) -> dict:
    mount = {"name": "tmp", "mountPath": str(volume)}
    return {
        "spec": {
            "template": {
                "spec": {
                    "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
                    "containers": [{"command": command, "volumeMounts": [mount]}],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
                }
            }
        }
    }


def test_code_under_an_emptydir_stays_visible_read_only_and_out_of_the_volume_listing(tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    code = volume / "checkout" / "app"
    code.mkdir(parents=True)
    (code / "marker.txt").write_text("from the checkout")
    (volume / "left-on-the-host.txt").write_text("the pod must not see this")
    for path in (tmp_path, volume, code.parent, code):
        path.chmod(0o755)
    (code / "marker.txt").chmod(0o644)

    pod = pod_sandbox.run_like_pod(
        _job(volume, [sys.executable, "-c", SCRIPT, str(volume)]), workdir=code, timeout=120
    )

    assert pod.returncode == 0, pod.output
    assert "marker: from the checkout" in pod.output
    assert "code is read-only: Read-only file system" in pod.output
    # A fresh volume: the host's file is hidden, only the path to the code is there.
    assert "volume holds: ['checkout']" in pod.output
    assert pod.written == {str(volume): ["scratch.txt"]}
    assert not (code / "written-into-code.txt").exists()
    assert not (volume / "scratch.txt").exists()
