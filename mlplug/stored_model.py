"""Saving and loading the model a version serves, including what the core wraps around the
task's own models (calibration, blends).

A plain task model is saved by its own ``save`` into the version's ``model/`` folder and
loaded by the task's ``load_model``, as always. A wrapped model writes
``mlplug-model.json`` (what wraps what, with the calibrator's numbers) and saves each task
model into a subfolder; :func:`load_model` rebuilds it. Every reader of a version (batch
prediction, the server, monitoring, champion scoring) loads through :func:`load_model`, so
they all serve the same, calibrated, probabilities.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlplug.blend import BlendModel
from mlplug.calibration import CalibratedModel, Calibrator
from mlplug.model_folder import ModelFormatError
from mlplug.task import Model, TaskType

MANIFEST = "mlplug-model.json"
FORMAT_VERSION = 1


def save_model(model: Model, path: Path) -> None:
    """Write ``model`` into the existing directory ``path``."""
    path = Path(path)
    spec = _save(model, path, "")
    if spec is not None:
        (path / MANIFEST).write_text(json.dumps({"format_version": FORMAT_VERSION, "model": spec}, indent=2))


def _save(model: Model, root: Path, sub: str) -> dict[str, Any] | None:
    """Save ``model`` under ``root/sub``; the manifest entry of a wrapper, ``None`` for a task
    model saved at the root itself."""
    if isinstance(model, CalibratedModel):
        inner = _save_part(model.inner, root, f"{sub}calibrated/")
        return {"kind": "calibrated", "calibrator": model.calibrator.to_dict(), "inner": inner}
    if isinstance(model, BlendModel):
        members = [
            _save_part(m, root, f"{sub}member-{i}-{kind}/")
            for i, (m, kind) in enumerate(zip(model.members, model.kinds, strict=True))
        ]
        return {
            "kind": "blend",
            "weights": model.weights,
            "kinds": model.kinds,
            "combine": model.combine,
            "members": members,
        }
    if not sub:
        model.save(root)
        return None
    return {"kind": "task", "folder": sub}


def _save_part(model: Model, root: Path, sub: str) -> dict[str, Any]:
    target = root / sub
    target.mkdir(parents=True, exist_ok=True)
    spec = _save(model, root, sub)
    if spec is None or spec.get("kind") == "task":
        model.save(target)
        return {"kind": "task", "folder": sub}
    return spec


def load_model(task: TaskType, path: Path) -> Model:
    """The model saved in ``path`` by :func:`save_model` (or by a task model's ``save``)."""
    path = Path(path)
    manifest = path / MANIFEST
    if not manifest.is_file():
        return task.load_model(path)
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"{manifest}: unreadable: {exc}") from exc
    version = data.get("format_version") if isinstance(data, dict) else None
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFormatError(
            f"{manifest}: format {version!r}; this mlplug reads up to {FORMAT_VERSION} (upgrade mlplug)"
        )
    return _load(task, path, data["model"], manifest)


def _load(task: TaskType, root: Path, spec: dict[str, Any], manifest: Path) -> Model:
    kind = spec.get("kind")
    if kind == "task":
        return task.load_model(root / spec["folder"])
    if kind == "calibrated":
        return CalibratedModel(
            _load(task, root, spec["inner"], manifest), Calibrator.from_dict(spec["calibrator"])
        )  # type: ignore[return-value]
    if kind == "blend":
        members = [_load(task, root, m, manifest) for m in spec["members"]]
        # Blends stored before geometric blending have no "combine": they were arithmetic.
        combine = spec.get("combine", "arithmetic")
        return BlendModel(members, spec["weights"], spec["kinds"], combine)  # type: ignore[return-value]
    raise ModelFormatError(f"{manifest}: unknown model kind {kind!r}; expected task, calibrated or blend")
