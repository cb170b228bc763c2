"""The core knows no task type: task names, model libraries and their words live in plugins/.

A plugin that needs something the core lacks gets a general hook instead; this keeps the
core honest for third-party task types.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The first-party task types and the libraries only their plugins may name.
FORBIDDEN = re.compile(r"fraud|convqa|catboost|transformers|minilm|shap\b", re.IGNORECASE)
#: Process-wide offline switches the core sets for whatever libraries plugins load.
ALLOWED = ("TRANSFORMERS_OFFLINE",)


def _hits(path: Path) -> list[str]:
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        cleaned = line
        for allowed in ALLOWED:
            cleaned = cleaned.replace(allowed, "")
        if FORBIDDEN.search(cleaned):
            found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return found


def test_the_core_and_the_flows_name_no_task_type() -> None:
    files = sorted([*(ROOT / "mlplug").rglob("*.py"), *(ROOT / "flows").rglob("*.py")])
    assert len(files) > 50
    hits = [hit for path in files for hit in _hits(path)]
    assert not hits, "task-specific names in the core:\n" + "\n".join(hits)
