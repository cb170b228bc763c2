"""The on-disk model format: a model directory holds its files plus ``model.json``.

``model.json`` records the format version, the model kind (``catboost`` or ``baseline``),
the file holding the fitted model, the feature columns in order, the categorical ones, the
class labels and the parameters. :func:`load_model` reads it to pick the class to load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlplug.errors import MlplugError

if TYPE_CHECKING:
    from mlplug_fraud.baseline import BaselineFraudModel
    from mlplug_fraud.model import CatBoostFraudModel

MANIFEST = "model.json"
FORMAT_VERSION = 1


class ModelFormatError(MlplugError):
    """A model directory is missing its manifest or was written by an unknown format."""


def write_manifest(path: Path, kind: str, file: str, **fields: Any) -> None:
    manifest = {"format_version": FORMAT_VERSION, "kind": kind, "file": file, **fields}
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))


def read_manifest(path: Path) -> dict[str, Any]:
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise ModelFormatError(f"{path}: no {MANIFEST}; not a directory written by a fraud model's save()")
    try:
        manifest = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"{file}: unreadable: {exc}") from exc
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFormatError(f"{file}: format_version {version!r}; this plugin reads {FORMAT_VERSION}")
    return manifest


def load_model(path: Path) -> CatBoostFraudModel | BaselineFraudModel:
    """The main or baseline model saved in ``path``, whichever the manifest names."""
    path = Path(path)
    manifest = read_manifest(path)
    kind = manifest.get("kind")
    if kind == "catboost":
        from mlplug_fraud.model import CatBoostFraudModel

        return CatBoostFraudModel.load(path, manifest)
    if kind == "baseline":
        from mlplug_fraud.baseline import BaselineFraudModel

        return BaselineFraudModel.load(path, manifest)
    raise ModelFormatError(f"{path / MANIFEST}: unknown model kind {kind!r}; expected catboost or baseline")
