"""``mlplug new-plugin``: write a complete, installable task plugin distribution.

The templates (``templates/common`` plus ``templates/<kind>``, shipped as package data) are
Python and TOML files with ``{{placeholders}}``; ``package/`` becomes the plugin's import
package. What they render passes its own tests (mlplug's conformance check among them), is
ruff-clean and trains with ``mlplug train NAME`` once installed; it depends on mlplug and
scikit-learn only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from mlplug.errors import MlplugError

KINDS = {
    "tabular": (
        "binary classification of table rows (boosted trees, logistic baseline)",
        "binary classification of tabular rows: a gradient-boosted tree model tuned by Ray Tune, "
        "a logistic-regression baseline, and attributions against a reference record.",
    ),
    "text": (
        "binary classification of short texts (TF-IDF, linear model, naive Bayes)",
        "binary classification of short texts: TF-IDF and a linear model trained epoch by epoch "
        "and tuned by Ray Tune, a naive Bayes baseline, and word-occlusion attributions.",
    ),
}
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
_SUFFIX = ".tmpl"


@dataclass(frozen=True)
class PluginNames:
    """How one task name is spelled in each place of a distribution."""

    name: str  # task name and entry-point name: churn, lead-score
    module: str  # import package: mlplug_churn
    dist: str  # distribution: mlplug-churn
    cls: str  # class name prefix: Churn, LeadScore

    @classmethod
    def of(cls, name: str) -> PluginNames:
        if not _NAME.match(name):
            raise MlplugError(
                f"plugin name {name!r} must start with a lower-case letter and hold only lower-case "
                "letters, digits, '-' and '_' (it becomes the task name), e.g. churn or lead-score"
            )
        words = re.split(r"[-_]", name)
        return cls(
            name=name,
            module="mlplug_" + name.replace("-", "_"),
            dist="mlplug-" + name.replace("_", "-"),
            cls="".join(w.capitalize() for w in words if w),
        )


def new_plugin(name: str, kind: str = "tabular", directory: Path | None = None) -> Path:
    """Write the plugin into ``directory`` (default ``./mlplug-<name>``) and return it.

    The directory must not exist or be empty: nothing is ever overwritten."""
    if kind not in KINDS:
        raise MlplugError(f"unknown plugin kind {kind!r}; choose one of {', '.join(KINDS)}")
    names = PluginNames.of(name)
    target = (directory or Path.cwd() / names.dist).expanduser()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise MlplugError(f"{target} already exists and is not an empty directory; choose another --dir")
    rendered = render(names, kind)
    for relative, text in rendered.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target


def render(names: PluginNames, kind: str) -> dict[Path, str]:
    """Every file of the plugin: relative path -> text."""
    short, long = KINDS[kind]
    values = {
        "name": names.name,
        "module": names.module,
        "dist": names.dist,
        "Class": names.cls,
        "kind": kind,
        "description": short,
        "kind_summary": long,
    }
    root = files("mlplug.scaffold") / "templates"
    out: dict[Path, str] = {}
    for layer in ("common", kind):  # the kind's files come second and may replace common ones
        for relative, template in _walk(root / layer, Path()):
            target = Path(*(names.module if part == "package" else part for part in relative.parts))
            target = target.with_name(target.name.removesuffix(_SUFFIX))
            out[target] = _fill(template.read_text("utf-8"), values)
    return out


def _walk(folder: Traversable, prefix: Path) -> list[tuple[Path, Traversable]]:
    found = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            found += _walk(entry, prefix / entry.name)
        elif entry.name.endswith(_SUFFIX):
            found.append((prefix / entry.name, entry))
    return found


def _fill(template: str, values: dict[str, str]) -> str:
    text = re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], template)
    if "{{" in text:  # a placeholder without a value: a bug in the templates
        raise AssertionError(f"unfilled placeholder in template: {text[text.index('{{') :][:40]!r}")
    return text
