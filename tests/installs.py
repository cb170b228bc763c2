"""Installing distributions the way a user would, into a directory a child process imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def pip_install_target(target: Path, *sources: Path) -> None:
    """``pip install --no-deps --target TARGET SOURCE...``: put ``target`` on a child's
    PYTHONPATH to make the distributions (and their entry points) visible to it only."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
        ]
        + [str(source) for source in sources],
        check=True,
        capture_output=True,
    )
