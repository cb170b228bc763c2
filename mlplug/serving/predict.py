"""Rows in, probabilities and response bodies out, for any task type.

A model that implements :class:`mlplug.task.RowModel` scores the rows directly; any other
model gets a DataFrame shaped exactly like a validated frame (float64 for numbers and
booleans, object for text), so it sees what it saw in training.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import pandas as pd

from mlplug.registry import ModelVersion
from mlplug.schema import Role, Schema
from mlplug.task import Explanation, Model

#: Most rows, and most estimated seconds, predicted on the event loop rather than in a thread:
#: a thread hand-off costs more than predicting a few rows with a fast model.
INLINE_ROWS = 64
INLINE_SECONDS = 0.002


class Predictor:
    """Scores validated rows with one loaded model version and renders the JSON answer."""

    def __init__(self, model: Model, schema: Schema, version: ModelVersion) -> None:
        self.model = model
        self.schema = schema
        self.version = version
        self.version_number = version.version
        rows_method = getattr(model, "predict_proba_rows", None)
        self._rows = rows_method if callable(rows_method) else None
        self._columns = schema.feature_names
        self._float = [c.role in (Role.NUMERIC, Role.BOOLEAN) for c in schema.features]
        self.classes = list(schema.classes)
        self.binary = schema.is_binary
        self.threshold = version.threshold
        self.id_column = schema.id_column
        #: Seconds per row measured by :meth:`warm_up`; unmeasured models count as slow.
        self.call_seconds = float("inf")

    @property
    def fast_path(self) -> bool:
        return self._rows is not None

    def warm_up(self, rows: Sequence[Sequence[Any]], repeats: int = 3) -> None:
        """Predict ``rows`` a few times: pays lazy initialisation off the request path and
        measures the time per call that :meth:`inline` decides with."""
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            self.proba(rows)
            best = min(best, time.perf_counter() - started)
        self.call_seconds = best / max(len(rows), 1)

    def inline(self, rows: int) -> bool:
        """Whether ``rows`` rows may be predicted on the event loop. Only when quick: while a
        prediction runs on the loop nothing else is answered, not even /healthz, so a slow
        model (a large neural network, say) always goes to the thread pool."""
        return rows <= INLINE_ROWS and rows * self.call_seconds <= INLINE_SECONDS

    def frame(self, rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
        columns = zip(*rows, strict=True) if rows else [()] * len(self._columns)
        # Series of dtype object, not arrays: pandas 3 would infer its "str" dtype for text,
        # and validated training frames hold text as object.
        data = {
            name: np.asarray(values, dtype=np.float64) if is_float else pd.Series(values, dtype=object)
            for name, values, is_float in zip(self._columns, columns, self._float, strict=True)
        }
        return pd.DataFrame(data, columns=self._columns)

    def proba(self, rows: Sequence[Sequence[Any]]) -> np.ndarray:
        out = self._rows(rows) if self._rows is not None else self.model.predict_proba(self.frame(rows))
        proba = np.asarray(out, dtype=np.float64)
        if proba.shape != (len(rows), len(self.classes)):
            raise RuntimeError(
                f"model version {self.version_number} returned probabilities of shape {proba.shape} "
                f"for {len(rows)} rows and {len(self.classes)} classes"
            )
        return proba

    def scores(self, proba: np.ndarray) -> tuple[list[float], list[str]]:
        """The reported probability and the predicted label of each row."""
        picks = self.schema.predicted_indices(proba, self.threshold)
        reported = proba[:, 1] if self.binary else proba[np.arange(len(proba)), picks]
        return reported.tolist(), [self.classes[i] for i in picks.tolist()]

    def render(
        self,
        proba: np.ndarray,
        probability: list[float],
        labels: list[str],
        ids: list[Any] | None,
        batch: bool,
    ) -> bytes:
        items: list[dict[str, Any]] = []
        per_class = None if self.binary else proba.tolist()
        for i, (p, label) in enumerate(zip(probability, labels, strict=True)):
            item: dict[str, Any] = {}
            if ids is not None and ids[i] is not None:
                item[self.id_column] = ids[i]  # type: ignore[index]
            item["prediction"] = label
            item["probability"] = p
            if per_class is not None:
                item["probabilities"] = dict(zip(self.classes, per_class[i], strict=True))
            items.append(item)
        if batch:
            return orjson.dumps({"model_version": self.version_number, "predictions": items})
        return orjson.dumps({"model_version": self.version_number, **items[0]})


def render_explanation(version: int, explanation: Explanation) -> bytes:
    def finite(values: dict[str, float]) -> dict[str, float]:
        # orjson writes NaN as null, which the documented float fields do not allow.
        return {k: (float(v) if np.isfinite(v) else 0.0) for k, v in values.items()}

    return orjson.dumps(
        {
            "model_version": version,
            "kind": explanation.kind,
            "global_importance": finite(explanation.global_importance),
            "per_row": [finite(row) for row in explanation.per_row],
        }
    )
