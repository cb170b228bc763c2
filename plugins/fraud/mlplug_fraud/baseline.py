"""The reference model: one-hot categories, standardised numbers, logistic regression.

It is what a careful analyst would try first, so the tuned model has to earn its keep
against it. Being linear, its exact SHAP values (interventional, with the training rows as
background) are cheap: coefficient times the transformed value's distance from its mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlplug.dataset import Dataset
from mlplug.schema import Role, Schema
from mlplug.task import ProgressCallback
from mlplug_fraud.columns import CLASSES
from mlplug_fraud.persistence import write_manifest

MODEL_FILE = "baseline.joblib"
DEFAULT_PARAMS: dict[str, Any] = {"C": 1.0, "max_categories": 50, "max_iter": 2000}


class BaselineFraudModel:
    """``mlplug.task.Model`` backed by a scikit-learn pipeline."""

    kind = "baseline"
    explanation_kind = "shap (exact, linear model, log-odds)"

    def __init__(
        self, features: Sequence[str], categorical: Sequence[str], params: Mapping[str, Any] | None = None
    ):
        self.features = list(features)
        self.categorical = [c for c in self.features if c in set(categorical)]
        unknown = sorted(set(params or {}) - DEFAULT_PARAMS.keys())
        if unknown:
            raise ValueError(f"unknown baseline parameter(s) {unknown}; known: {sorted(DEFAULT_PARAMS)}")
        self.params = {**DEFAULT_PARAMS, **(params or {})}
        self._pipeline: Pipeline | None = None
        #: Mean of each transformed column on the training rows: the SHAP background.
        self._background: np.ndarray | None = None

    @classmethod
    def for_schema(cls, schema: Schema) -> BaselineFraudModel:
        return cls(schema.feature_names, schema.columns_with(Role.CATEGORICAL))

    def _build(self) -> Pipeline:
        # One transformer per feature, so that output_indices_ maps every encoded column back
        # to its feature for the SHAP values.
        steps = []
        for name in self.features:
            if name in self.categorical:
                encoder: Any = OneHotEncoder(
                    handle_unknown="infrequent_if_exist",
                    max_categories=self.params["max_categories"],
                    sparse_output=False,
                )
            else:
                encoder = Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                        ("scale", StandardScaler()),
                    ]
                )
            steps.append((name, encoder, [name]))
        return Pipeline(
            [
                ("encode", ColumnTransformer(steps, sparse_threshold=0.0)),
                (
                    "classify",
                    LogisticRegression(
                        C=self.params["C"], class_weight="balanced", max_iter=self.params["max_iter"]
                    ),
                ),
            ]
        )

    def fit(
        self, train: Dataset, valid: Dataset | None = None, progress: ProgressCallback | None = None
    ) -> None:
        """Fit in one go; with ``valid`` and ``progress``, report its PR-AUC once, as step 1."""
        pipeline = self._build()
        X = train.frame[self.features]  # noqa: N806
        pipeline.fit(X, train.y)
        self._pipeline = pipeline
        self._background = np.asarray(pipeline.named_steps["encode"].transform(X)).mean(axis=0)
        if valid is not None and progress is not None and len(np.unique(valid.y)) == 2:
            progress(1, float(average_precision_score(valid.y, self.predict_proba(valid.X)[:, 1])))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Probabilities of (legit, fraud), float64, shape (rows, 2)."""
        if list(X.columns) != self.features:
            X = X[self.features]  # noqa: N806
        return self._fitted().predict_proba(X).astype(np.float64, copy=False)

    def shap_values(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Exact SHAP values of the logit, per row and feature; shape (rows, features)."""
        pipeline = self._fitted()
        encode: ColumnTransformer = pipeline.named_steps["encode"]
        coef = pipeline.named_steps["classify"].coef_[0]
        z = np.asarray(encode.transform(X[self.features]))
        background = self._background if self._background is not None else z.mean(axis=0)
        parts = (z - background) * coef
        out = np.zeros((len(X), len(self.features)))
        for i, name in enumerate(self.features):
            out[:, i] = parts[:, encode.output_indices_[name]].sum(axis=1)
        return out

    def _fitted(self) -> Pipeline:
        if self._pipeline is None:
            raise RuntimeError("BaselineFraudModel is not fitted; call fit() or load() first")
        return self._pipeline

    def save(self, path: Path) -> None:
        """Write ``baseline.joblib`` and ``model.json`` into the existing directory ``path``.

        joblib is a pickle: load only models from a store you trust (as for any registry).
        """
        path = Path(path)
        joblib.dump({"pipeline": self._fitted(), "background": self._background}, path / MODEL_FILE)
        write_manifest(
            path,
            kind=self.kind,
            file=MODEL_FILE,
            features=self.features,
            categorical=self.categorical,
            classes=list(CLASSES),
            params=self.params,
        )

    @classmethod
    def load(cls, path: Path, manifest: Mapping[str, Any]) -> BaselineFraudModel:
        self = cls(manifest["features"], manifest["categorical"], manifest["params"])
        saved = joblib.load(Path(path) / manifest["file"])
        self._pipeline = saved["pipeline"]
        self._background = saved["background"]
        return self
