"""The on-disk model format: a model directory holds its files plus ``model.json``.

``model.json`` records the format version, the model kind (``catboost`` or ``baseline``),
the file holding the fitted model, the feature columns in order, the categorical ones, the
class labels and the parameters. :func:`load_model` reads it to pick the class to load.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlplug.model_folder import ModelFormatError, ModelManifest

if TYPE_CHECKING:
    from mlplug_fraud.baseline import BaselineFraudModel
    from mlplug_fraud.model import CatBoostFraudModel

#: ``model.json``: which kind of model the folder holds and how to rebuild it.
MANIFEST = ModelManifest(owner="fraud model", kinds=("catboost", "baseline"), file="model.json")


def write_manifest(path: Path, kind: str, file: str, **fields: Any) -> None:
    MANIFEST.write(path, kind, file=file, **fields)


def read_manifest(path: Path) -> dict[str, Any]:
    return MANIFEST.read(path)


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
    raise ModelFormatError(f"{path / MANIFEST.file}: unknown model kind {kind!r}")  # read() checked it
