"""The small JSON file that every saved convqa model directory carries.

``convqa_model.json`` says which kind of model the directory holds (``transformer`` or
``baseline``), the schema it was trained for and its parameters, so that
``ConvQATask.load_model(path)`` can rebuild either kind from the directory alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlplug.errors import MlplugError
from mlplug.schema import Schema

MANIFEST = "convqa_model.json"
FORMAT_VERSION = 1
KINDS = ("transformer", "baseline")


class ConvQAModelError(MlplugError, ValueError):
    """A model cannot be built or loaded; the message names the path or parameter at fault."""


def write_manifest(path: Path, kind: str, schema: Schema, params: dict[str, Any], **extra: Any) -> None:
    data = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "classes": list(schema.classes),
        "schema": schema.to_dict(),
        "params": params,
        **extra,
    }
    (path / MANIFEST).write_text(json.dumps(data, indent=2, sort_keys=True, default=str))


def read_manifest(path: Path) -> dict[str, Any]:
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise ConvQAModelError(f"{path}: not a saved convqa model (no {MANIFEST})")
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise ConvQAModelError(f"{file}: cannot read: {exc}") from exc
    if data.get("kind") not in KINDS:
        raise ConvQAModelError(f"{file}: unknown model kind {data.get('kind')!r}; expected one of {KINDS}")
    if int(data.get("format_version", 0)) > FORMAT_VERSION:
        raise ConvQAModelError(
            f"{file}: written by a newer mlplug-convqa (format {data['format_version']}); upgrade it"
        )
    return data


def manifest_schema(data: dict[str, Any]) -> Schema:
    return Schema.from_dict(data["schema"])
