"""Install the throwaway plugin distributions in ``tests/plugin_dists`` the way a third party's
plugin is installed: ``pip install`` into a directory that then goes on ``PYTHONPATH``."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DISTS = Path(__file__).resolve().parent / "plugin_dists"


def pip_install(dist: str, target: Path) -> Path:
    """``pip install --target target tests/plugin_dists/<dist>``; returns ``target``.

    The source is copied first: building in place would leave build files in the tree."""
    with tempfile.TemporaryDirectory(prefix="mlplug-dist-") as tmp:
        source = shutil.copytree(DISTS / dist, Path(tmp) / dist)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
             "--target", str(target), str(source)],
            check=True,
            capture_output=True,
        )  # fmt: skip
    return target
