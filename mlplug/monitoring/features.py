"""The columns a profile holds: model inputs, derived by their schema role, and outputs.

Numeric features are profiled as numbers, categorical and boolean ones as strings. Free
text is profiled through its shape (characters, words, lines), which moves when the channel
or the phrasing does; a task adds its own derived columns with ``TaskType.monitor_features``.
Outputs are the predicted label and the model's score: for a binary task the probability of
the positive class, otherwise the probability of the predicted class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlplug.schema import Role, Schema
from mlplug.task import TaskType

PREDICTION = "prediction"
SCORE = "score"


@dataclass(frozen=True)
class MonitoredColumn:
    name: str
    #: ``numeric`` or ``categorical``: how it is sketched and scored.
    kind: str
    #: ``input`` (a feature or derived from one) or ``output`` (what the model answered).
    source: str


def monitored_columns(task_type: TaskType, schema: Schema) -> list[MonitoredColumn]:
    """The columns :func:`monitoring_frame` produces for this schema, in order."""
    columns: list[MonitoredColumn] = []
    for col in schema.features:
        if col.role is Role.TEXT:
            columns += [MonitoredColumn(f"{col.name}.{part}", "numeric", "input") for part in _TEXT_PARTS]
        elif col.role in (Role.CATEGORICAL, Role.BOOLEAN):
            columns.append(MonitoredColumn(col.name, "categorical", "input"))
        else:
            columns.append(MonitoredColumn(col.name, "numeric", "input"))
    extra = task_type.monitor_features(_empty_frame(schema))
    for name in extra.columns:
        kind = "numeric" if pd.api.types.is_numeric_dtype(extra[name]) else "categorical"
        columns.append(MonitoredColumn(name, kind, "input"))
    columns.append(MonitoredColumn(PREDICTION, "categorical", "output"))
    columns.append(MonitoredColumn(SCORE, "numeric", "output"))
    return columns


_TEXT_PARTS = ("chars", "words", "lines")


def monitoring_frame(
    task_type: TaskType,
    schema: Schema,
    X: pd.DataFrame,  # noqa: N803
    proba: np.ndarray | None = None,
    predictions: Sequence[str] | None = None,
    threshold: float | None = None,
) -> pd.DataFrame:
    """Inputs (by role) and outputs of ``X`` as the frame that gets profiled. Without
    ``predictions`` the labels are derived from ``proba`` as the server does: the positive
    class at ``threshold`` (default 0.5) for a binary task, the likeliest class otherwise."""
    out: dict[str, pd.Series] = {}
    index = X.index
    for col in schema.features:
        values = X[col.name]
        if col.role is Role.TEXT:
            text = values.fillna("").astype(str)
            out[f"{col.name}.chars"] = text.str.len().astype(float)
            out[f"{col.name}.words"] = text.str.split().str.len().astype(float)
            out[f"{col.name}.lines"] = (text.str.count("\n") + 1).astype(float)
        elif col.role is Role.CATEGORICAL:
            out[col.name] = values.astype(object).where(values.notna(), None)
        elif col.role is Role.BOOLEAN:  # validated as 0.0/1.0; shown as the flag it is
            flags = pd.to_numeric(values, errors="coerce")
            out[col.name] = flags.map({0.0: "false", 1.0: "true"}).astype(object).where(flags.notna(), None)
        else:
            out[col.name] = pd.to_numeric(values, errors="coerce").astype(float)
    frame = pd.DataFrame(out, index=index)
    extra = task_type.monitor_features(X)
    if len(extra.columns):
        frame = pd.concat([frame, extra.set_axis(index)], axis=1)
    if proba is not None:
        proba = np.asarray(proba, dtype=float)
        if predictions is None:
            predictions = schema.predicted_labels(proba, threshold)
        score = proba[:, 1] if schema.is_binary else proba.max(axis=1)
        frame[PREDICTION] = pd.Series(list(predictions), index=index, dtype=object)
        frame[SCORE] = pd.Series(score, index=index, dtype=float)
    return frame


def _empty_frame(schema: Schema) -> pd.DataFrame:
    dtypes = {Role.NUMERIC: float, Role.BOOLEAN: float}
    return pd.DataFrame({c.name: pd.Series([], dtype=dtypes.get(c.role, object)) for c in schema.features})
