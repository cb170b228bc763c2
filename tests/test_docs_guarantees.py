"""Every test that docs/operations.md "What mlplug guarantees" names exists: a promise must
not outlive the test that proves it. ``tests/x.py::test_y`` names a test; ``::test_z`` is
in the file named last before it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## What mlplug guarantees"


def named_tests() -> list[tuple[str, str]]:
    text = (ROOT / "docs" / "operations.md").read_text()
    section = text[text.index(SECTION) :]
    found, current = [], ""
    for path, name in re.findall(r"`(tests/[\w/]+\.py)?(?:::(\w+))?`", section):
        current = path or current
        if name:
            found.append((current, name))
    return found


def test_every_test_the_guarantees_name_exists() -> None:
    named = named_tests()
    assert len(named) > 20
    missing = [
        f"{path}::{name}"
        for path, name in named
        if not re.search(rf"^\s*def {name}\(", (ROOT / path).read_text(), re.MULTILINE)
    ]
    assert missing == []
