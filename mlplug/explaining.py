"""Explanations of whatever a run registers, through the task type's own ``explain``.

A training run may register the task's model as the task built it, or wrapped by the core:
calibrated (:class:`~mlplug.calibration.CalibratedModel`) or blended with the baseline
(:class:`~mlplug.blend.BlendModel`). A plugin's ``explain`` knows only its own models, so
the core unwraps before calling it: a calibrated model is explained by its inner model (the
calibrator maps the score monotonically, so which features push it up or down is the inner
model's story); a blend by the weighted mean of its members' attributions, with the weights
of the blend. Training and the server's ``/explain`` both call :func:`explain_model`.
"""

from __future__ import annotations

from mlplug.blend import BlendModel
from mlplug.calibration import CalibratedModel
from mlplug.dataset import Dataset
from mlplug.task import Explanation, Model, TaskType


def explain_model(task: TaskType, model: Model | object, data: Dataset, rows: int = 100) -> Explanation:
    """The task's explanation of ``model`` on the first ``rows`` rows of ``data``."""
    if isinstance(model, CalibratedModel):
        inner = explain_model(task, model.inner, data, rows)
        return Explanation(f"{inner.kind}; before calibration", inner.global_importance, inner.per_row)
    if isinstance(model, BlendModel):
        parts = [explain_model(task, member, data, rows) for member in model.members]
        return _weighted(parts, model.weights, model.kinds)
    return task.explain(model, data, rows=rows)  # type: ignore[arg-type]


def _weighted(parts: list[Explanation], weights: list[float], kinds: list[str]) -> Explanation:
    features = list(dict.fromkeys(f for part in parts for f in part.global_importance))
    importance = {
        f: sum(w * part.global_importance.get(f, 0.0) for part, w in zip(parts, weights, strict=True))
        for f in features
    }
    per_row = []
    if all(len(part.per_row) == len(parts[0].per_row) for part in parts):
        for row_parts in zip(*(part.per_row for part in parts), strict=True):
            names = list(dict.fromkeys(f for row in row_parts for f in row))
            per_row.append(
                {
                    f: sum(w * row.get(f, 0.0) for row, w in zip(row_parts, weights, strict=True))
                    for f in names
                }
            )
    kind = "blend: " + " + ".join(
        f"{w:.2f} of the {k} ({part.kind})" for part, w, k in zip(parts, weights, kinds, strict=True)
    )
    return Explanation(kind, importance, per_row)
