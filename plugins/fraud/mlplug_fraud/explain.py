"""Per-row attributions and their global summary (mean absolute attribution per feature).

Models that know their SHAP values (both of this plugin's models have a ``shap_values``
method) give exact ones. Anything else, or a SHAP computation that fails, falls back to a
label-free permutation attribution: how much P(fraud) moves when one column is shuffled.
Explaining never raises for a fitted model.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from mlplug.dataset import Dataset
from mlplug.task import Explanation, Model

log = logging.getLogger(__name__)

PERMUTATION_KIND = "permutation (change in P(fraud) when the column is shuffled)"


def explain(model: Model, data: Dataset, rows: int = 100) -> Explanation:
    """Attributions for the first ``rows`` rows of ``data``; select rows with ``data.subset``."""
    features = data.schema.feature_names
    X = data.X.iloc[: max(0, rows)]  # noqa: N806
    if X.empty:
        return Explanation(kind="none (no rows)", global_importance=dict.fromkeys(features, 0.0))
    values, kind = None, PERMUTATION_KIND
    shap_values = getattr(model, "shap_values", None)
    if callable(shap_values):
        try:
            values = np.asarray(shap_values(X), dtype=np.float64)
            kind = getattr(model, "explanation_kind", "shap")
            if values.shape != X.shape:
                raise ValueError(f"shap_values returned shape {values.shape} for {X.shape} input")
        except Exception as exc:  # an explanation is a report section, never worth a failed run
            log.warning("SHAP values failed (%r); using permutation attributions", exc)
            values, kind = None, PERMUTATION_KIND
    if values is None:
        values = permutation_attributions(model, X)
    return Explanation(
        kind=kind,
        global_importance={f: float(v) for f, v in zip(features, np.abs(values).mean(axis=0), strict=True)},
        per_row=[dict(zip(features, map(float, row), strict=True)) for row in values],
    )


def permutation_attributions(model: Any, X: pd.DataFrame, seed: int = 0) -> np.ndarray:  # noqa: N803
    """P(fraud) minus P(fraud) with one column shuffled, per row and column.

    Needs no labels, so it works on scoring data too. One column at a time keeps the other
    columns' joint distribution intact.
    """
    rng = np.random.default_rng(seed)
    base = model.predict_proba(X)[:, 1]
    out = np.zeros(X.shape)
    for i, name in enumerate(X.columns):
        shuffled = X.copy()
        shuffled[name] = X[name].to_numpy()[rng.permutation(len(X))]
        out[:, i] = base - model.predict_proba(shuffled)[:, 1]
    return out
