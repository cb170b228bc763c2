"""A snapshot of the running environment, stored with every model version."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib.metadata import distributions
from pathlib import Path
from typing import Any


def packages() -> dict[str, str]:
    """Every installed distribution and its version, sorted by name."""
    found: dict[str, str] = {}
    for dist in distributions():
        name = dist.metadata.get("Name")
        if name:
            found.setdefault(name.lower(), dist.version)
    return dict(sorted(found.items()))


def git_commit(path: Path | None = None) -> str | None:
    """The commit of the checkout at ``path`` (default: cwd), or ``None`` outside git."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=path or Path.cwd(),
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def snapshot() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": memory_bytes(),
        "git_commit": git_commit(),
        "packages": packages(),
    }
