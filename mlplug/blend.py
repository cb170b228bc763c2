"""A blend of fitted models: the weighted mean of their probabilities, served as one model.

The ensemble candidate of a training run (:mod:`mlplug.selection`) blends the tuned model
and the baseline with a weight chosen in cross-validation; :mod:`mlplug.stored_model` saves
and loads it as one version. Explanations of a blend come from the task's ``explain``, which
sees an ordinary model (no ``shap_values`` of its own: a mean of probabilities is not
additive in the members' log-odds).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlplug.task import Model


class BlendModel:
    """``sum(weight * member.predict_proba)`` over fitted members; weights sum to 1."""

    explanation_kind = "blend of the model and the baseline"

    def __init__(self, members: Sequence[Model], weights: Sequence[float], kinds: Sequence[str]) -> None:
        if len(members) != len(weights) or len(members) != len(kinds) or not members:
            raise ValueError("a blend needs one weight and one kind per member, and members")
        total = float(sum(weights))
        if total <= 0 or any(w < 0 for w in weights):
            raise ValueError(f"blend weights must be non-negative with a positive sum, got {list(weights)}")
        self.members = list(members)
        self.weights = [float(w) / total for w in weights]
        self.kinds = list(kinds)

    def fit(self, train: Any, valid: Any = None, progress: Any = None) -> None:
        raise RuntimeError("a blend is built from fitted members; fit the members")

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        return sum(
            w * np.asarray(m.predict_proba(X), dtype=np.float64)
            for m, w in zip(self.members, self.weights, strict=True)
        )  # type: ignore[return-value]

    def save(self, path: Any) -> None:
        raise RuntimeError("save blends with mlplug.stored_model.save_model")

    def __getattr__(self, name: str) -> Any:
        # Serving's fast path: offered only when every member scores plain rows.
        if name == "predict_proba_rows":
            members = self.__dict__.get("members") or []
            if members and all(hasattr(m, "predict_proba_rows") for m in members):
                return self._proba_rows
        raise AttributeError(name)

    def _proba_rows(self, rows: Sequence[Sequence[Any]]) -> np.ndarray:
        return sum(
            w * np.asarray(m.predict_proba_rows(rows), dtype=np.float64)  # type: ignore[attr-defined]
            for m, w in zip(self.members, self.weights, strict=True)
        )  # type: ignore[return-value]


def blend_proba(probas: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The blend of precomputed probabilities, as :class:`BlendModel` would predict them."""
    total = float(sum(weights))
    return sum(w / total * np.asarray(p, dtype=np.float64) for p, w in zip(probas, weights, strict=True))  # type: ignore[return-value]
