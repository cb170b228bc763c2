"""Docs drift is a test failure: every hook and every TaskType method is in the guide."""

from __future__ import annotations

import builtins
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlplug import hookspecs
from mlplug.task import TaskType

GUIDE = Path(__file__).parents[1] / "docs" / "plugin-guide.md"


def _hooks() -> list[str]:
    return [n for n, f in vars(hookspecs).items() if inspect.isfunction(f) and hasattr(f, "mlplug_spec")]


def _signature(func) -> str:
    sig = inspect.signature(func)
    params = ", ".join(
        f"{p.name}: {p.annotation}" + (f" = {p.default!r}" if p.default is not p.empty else "")
        for p in sig.parameters.values()
        if p.name != "self"
    )
    return f"{func.__name__}({params}) -> {sig.return_annotation}"


def test_there_are_hooks() -> None:
    assert {"register_tasks", "register_storage_backends", "after_register", "after_promote"} <= set(_hooks())


@pytest.mark.parametrize("name", _hooks())
def test_every_hook_is_documented_with_its_signature(name: str) -> None:
    text = GUIDE.read_text()
    signature = _signature(getattr(hookspecs, name))
    assert f"def {signature}" in text, f"docs/plugin-guide.md lacks `def {signature}`"


@pytest.mark.parametrize(
    "name",
    sorted(n for n, f in vars(TaskType).items() if inspect.isfunction(f) and not n.startswith("_")),
)
def test_every_task_type_method_is_documented(name: str) -> None:
    signature = _signature(getattr(TaskType, name))
    assert f"def {signature}" in GUIDE.read_text(), f"docs/plugin-guide.md lacks `def {signature}`"


def test_every_hook_has_a_test() -> None:
    here = Path(__file__)
    tests = "\n".join(p.read_text() for p in here.parent.rglob("test_*.py") if p != here)
    untested = [h for h in _hooks() if h not in tests]
    assert not untested


# -- imports the guide shows -------------------------------------------------------------

#: Backticked capitalised words in the guide that are not types to import.
NOT_TYPES = {"None", "True", "False", "NaN", "Infinity"}


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def _import_statements(block: str) -> list[str]:
    """``import``/``from`` statements of a code block, parenthesised ones joined up; the
    blocks also hold signatures and fragments that are not valid Python on their own."""
    statements, lines = [], iter(block.splitlines())
    for line in lines:
        code = line.split("#", 1)[0].rstrip()
        if not re.match(r"^(import|from) \w", code):
            continue
        while code.count("(") > code.count(")"):
            code += " " + next(lines).split("#", 1)[0].strip()
        statements.append(code)
    return statements


def test_every_import_in_the_guide_imports(tmp_path: Path) -> None:
    """Run every import line of the guide's code blocks, with the scaffold's churn plugin
    (the guide's example) importable, in a fresh interpreter."""
    from mlplug.scaffold import new_plugin

    example = new_plugin("churn", "tabular", tmp_path / "mlplug-churn")
    statements = [s for block in _python_blocks(GUIDE.read_text()) for s in _import_statements(block)]
    assert len(statements) >= 20
    script = "\n".join(statements)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(example), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"an import in docs/plugin-guide.md fails:\n{done.stderr[-3000:]}"


def test_every_type_the_guide_names_is_imported_in_it() -> None:
    text = GUIDE.read_text()
    blocks = _python_blocks(text)
    imported: set[str] = set()
    for statement in (s for block in blocks for s in _import_statements(block)):
        names = statement.split(" import ", 1)[1] if statement.startswith("from ") else statement[7:]
        imported |= {n.strip(" ()").split(" as ")[-1] for n in names.split(",") if n.strip(" ()")}
    defined = {m for block in blocks for m in re.findall(r"^\s*class (\w+)", block, flags=re.M)}
    named = set(re.findall(r"`([A-Z][a-z][A-Za-z0-9]*)[`(.\[ ]", text))
    unexplained = sorted(
        n
        for n in named - imported - defined - NOT_TYPES
        if not hasattr(builtins, n) and not n.startswith("Churn")  # the example plugin's own
    )
    assert not unexplained, f"docs/plugin-guide.md names types without showing their import: {unexplained}"


def test_the_guides_example_names_exist_in_the_scaffold(tmp_path: Path) -> None:
    from mlplug.scaffold import new_plugin

    example = new_plugin("churn", "tabular", tmp_path / "mlplug-churn")
    source = "\n".join(p.read_text() for p in (example / "mlplug_churn").glob("*.py"))
    for name in sorted(set(re.findall(r"`(Churn[A-Za-z]*)", GUIDE.read_text()))):
        assert f"class {name}" in source, name


def test_the_guide_starts_with_the_scaffold() -> None:
    first_section = GUIDE.read_text().split("\n## ")[1]
    assert first_section.startswith("Start with the scaffold") and "mlplug new-plugin" in first_section
