"""A small task type that passes the conformance check: logistic regression on two numbers.

Tests of :mod:`mlplug.testing.conformance` subclass it to break one rule at a time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlplug.dataset import Dataset
from mlplug.io import read_table
from mlplug.schema import Column, Role, Schema
from mlplug.task import BusinessValue, Explanation, LoadOptions, Metrics, SearchSpace, TaskType

SCHEMA = Schema(
    features=(Column("a", Role.NUMERIC), Column("b", Role.NUMERIC)), target="y", classes=("no", "yes")
)


class LinearOptions(LoadOptions):
    target: str = "y"


class LinearModel:
    def __init__(self, c: float = 1.0) -> None:
        self.c = c
        self.weights = np.zeros(2)
        self.bias = 0.0
        #: Feature means on the training rows: the reference of ``explain``, kept with the model.
        self.means = np.zeros(2)

    def fit(self, train: Dataset, valid: Dataset | None = None, progress: Any = None) -> None:
        from sklearn.linear_model import LogisticRegression

        fitted = LogisticRegression(C=self.c).fit(train.X.to_numpy(), train.y)
        self.weights, self.bias = fitted.coef_[0], float(fitted.intercept_[0])
        self.means = train.X.to_numpy().mean(axis=0)
        if progress is not None and valid is not None:
            progress(1, float(np.mean((self.predict_proba(valid.X)[:, 1] > 0.5) == valid.y)))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        p = 1 / (1 + np.exp(-(X[["a", "b"]].to_numpy() @ self.weights + self.bias)))
        return np.column_stack([1 - p, p])

    def save(self, path: Path) -> None:
        state = {
            "c": self.c,
            "weights": self.weights.tolist(),
            "bias": self.bias,
            "means": self.means.tolist(),
        }
        (path / "linear.json").write_text(json.dumps(state))

    @classmethod
    def load(cls, path: Path) -> LinearModel:
        state = json.loads((path / "linear.json").read_text())
        model = cls(state["c"])
        model.weights, model.bias = np.array(state["weights"]), state["bias"]
        model.means = np.array(state["means"])
        return model


class LinearTask(TaskType):
    name = "linear"
    options_model = LinearOptions

    def load(self, url: str, options: LoadOptions) -> Dataset:
        assert isinstance(options, LinearOptions)
        return Dataset(SCHEMA.validate(read_table(url), url), SCHEMA, url)

    def synthesize(self, rows: int, seed: int = 0, drift: float = 0.0) -> Dataset:
        rng = np.random.default_rng(seed)
        a, b = rng.normal(drift, 1, rows), rng.normal(0, 1, rows)
        y = (a - b + rng.normal(0, 1, rows) > 0).astype(int)
        frame = pd.DataFrame({"a": a, "b": b, "y": y})
        return Dataset(SCHEMA.validate(frame, "synthetic"), SCHEMA, "synthetic")

    def create_model(self, schema: Schema, params: Mapping[str, Any]) -> Any:
        return LinearModel(params.get("c", 1.0))

    def create_baseline(self, schema: Schema) -> Any:
        return LinearModel(0.01)

    def load_model(self, path: Path) -> Any:
        return LinearModel.load(path)

    def search_space(self) -> SearchSpace:
        from ray import tune

        return SearchSpace(params={"c": tune.loguniform(0.01, 10.0)}, max_steps=1)

    def quick_params(self) -> dict[str, Any]:
        return {"c": 1.0}

    def evaluate(self, data: Dataset, proba: np.ndarray, threshold: float | None = None) -> Metrics:
        cut = 0.5 if threshold is None else threshold
        accuracy = float(np.mean((proba[:, 1] >= cut) == data.y))
        return Metrics(values={"accuracy": accuracy}, primary="accuracy", threshold=cut)

    def business_value(self, data: Dataset, proba: np.ndarray, metrics: Metrics) -> BusinessValue:
        return BusinessValue(value=metrics.score, unit="points", no_model_value=0.5, summary="accuracy")

    def explain(self, model: Any, data: Dataset, rows: int = 100) -> Explanation:
        X = data.X.iloc[:rows].to_numpy()  # noqa: N806
        per_row = (X - model.means) * model.weights  # exact for a linear logit
        return Explanation(
            kind="linear contributions",
            global_importance={
                "a": float(np.abs(per_row[:, 0]).mean()),
                "b": float(np.abs(per_row[:, 1]).mean()),
            },
            per_row=[{"a": float(r[0]), "b": float(r[1])} for r in per_row],
        )
