"""A blend of fitted models, served as one model.

The ensemble candidate of a training run (:mod:`mlplug.selection`) blends the tuned model
and the baseline with a weight chosen in cross-validation; :mod:`mlplug.stored_model` saves
and loads it as one version. Explanations of a blend come from the task's ``explain``, which
sees an ordinary model (no ``shap_values`` of its own).

Blends are **geometric** (the normalised weighted geometric mean of the members'
probabilities; for two classes, the weighted mean of their log-odds). An arithmetic mean of
probabilities lets whichever member has the larger probabilities dominate: a member trained
with class weights predicts several times the base rate and swamps a calibrated one, so the
weight chosen in CV partly undoes a scale difference instead of mixing rankings. A
class-weighting or prior shift moves a member's log-odds by a constant, which leaves a
geometric blend's ranking unchanged. Blends stored before this (``combine`` absent) stay
arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlplug.schema import categories_as_text
from mlplug.task import Model, accepts_category_dtype

#: How members' probabilities are combined: see the module docstring.
COMBINES = ("geometric", "arithmetic")
#: Probabilities are clipped to [EPS, 1 - EPS] before their logarithm.
_EPS = 1e-7


class BlendModel:
    """The weighted geometric (or, for old blends, arithmetic) mean of fitted members'
    probabilities; weights sum to 1."""

    explanation_kind = "blend of the model and the baseline"

    def __init__(
        self,
        members: Sequence[Model],
        weights: Sequence[float],
        kinds: Sequence[str],
        combine: str = "geometric",
    ) -> None:
        if len(members) != len(weights) or len(members) != len(kinds) or not members:
            raise ValueError("a blend needs one weight and one kind per member, and members")
        total = float(sum(weights))
        if total <= 0 or any(w < 0 for w in weights):
            raise ValueError(f"blend weights must be non-negative with a positive sum, got {list(weights)}")
        if combine not in COMBINES:
            raise ValueError(f"blend combine must be one of {COMBINES}, got {combine!r}")
        self.members = list(members)
        self.weights = [float(w) / total for w in weights]
        self.kinds = list(kinds)
        self.combine = combine

    def fit(self, train: Any, valid: Any = None, progress: Any = None) -> None:
        raise RuntimeError("a blend is built from fitted members; fit the members")

    @property
    def accepts_category_dtype(self) -> bool:
        """Whether any member does (``mlplug.task.CategoryModel``); the others get text."""
        return any(accepts_category_dtype(m) for m in self.members)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        text: pd.DataFrame | None = None  # converted once, for the members that need text
        probas = []
        for member in self.members:
            if accepts_category_dtype(member):
                probas.append(member.predict_proba(X))
                continue
            text = categories_as_text(X) if text is None else text
            probas.append(member.predict_proba(text))
        return blend_proba(probas, self.weights, self.combine)

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
        return blend_proba(
            [m.predict_proba_rows(rows) for m in self.members],  # type: ignore[attr-defined]
            self.weights,
            self.combine,
        )


def blend_proba(
    probas: Sequence[np.ndarray], weights: Sequence[float], combine: str = "geometric"
) -> np.ndarray:
    """The blend of precomputed probabilities, as :class:`BlendModel` would predict them."""
    total = float(sum(weights))
    arrays = [np.asarray(p, dtype=np.float64) for p in probas]
    if combine == "arithmetic":
        return sum(w / total * p for p, w in zip(arrays, weights, strict=True))  # type: ignore[return-value]
    log_mean = sum(w / total * np.log(np.clip(p, _EPS, 1.0)) for p, w in zip(arrays, weights, strict=True))
    # Normalise per row; subtracting the row maximum keeps exp() from underflowing to 0/0.
    unnormalised = np.exp(log_mean - np.max(log_mean, axis=1, keepdims=True))  # type: ignore[call-overload]
    return unnormalised / unnormalised.sum(axis=1, keepdims=True)
