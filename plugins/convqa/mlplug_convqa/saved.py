"""The small JSON file that every saved convqa model directory carries.

``convqa_model.json`` says which kind of model the directory holds (``transformer`` or
``baseline``), the schema it was trained for and its parameters, so that
``ConvQATask.load_model(path)`` can rebuild either kind from the directory alone.

Formats: 1 held transformers' [CLS] sequence classifier only; 2 adds the mean-pooling
transformer (``params.pooling == "mean"``: the encoder, its tokenizer and ``head.safetensors``).
This release reads both; a release that reads only format 1 refuses format-2 folders with a
message to upgrade, rather than loading a mean-pooling model as something else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlplug.errors import MlplugError
from mlplug.model_folder import ModelFormatError, ModelManifest
from mlplug.schema import Schema

MANIFEST = "convqa_model.json"
KINDS = ("transformer", "baseline")
_MANIFEST = ModelManifest(owner="convqa model", kinds=KINDS, file=MANIFEST, format_version=2)


class ConvQAModelError(MlplugError, ValueError):
    """A model cannot be built or loaded; the message names the path or parameter at fault."""


def write_manifest(path: Path, kind: str, schema: Schema, params: dict[str, Any], **extra: Any) -> None:
    _MANIFEST.write(path, kind, classes=list(schema.classes), schema=schema.to_dict(), params=params, **extra)


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        return _MANIFEST.read(path)
    except ModelFormatError as exc:
        raise ConvQAModelError(str(exc)) from None


def manifest_schema(data: dict[str, Any]) -> Schema:
    return Schema.from_dict(data["schema"])
