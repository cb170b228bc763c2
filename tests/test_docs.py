"""Docs drift is a test failure: every hook and every TaskType method is in the guide."""

from __future__ import annotations

import inspect
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
