"""A small task type with real (scikit-learn) models, for tests about model selection,
refitting and calibration. Its saved models record the rows they were fitted on and the
parameters they were built with, so a test can check what was registered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlplug.dataset import Dataset
from mlplug.schema import Column, Role, Schema
from mlplug.task import BusinessValue, Explanation, Metrics, SearchSpace, TaskType

SCHEMA = Schema(
    features=(Column("x1", Role.NUMERIC), Column("x2", Role.NUMERIC)), target="y", classes=("no", "yes")
)
#: The "steps" the main model reports through ``refit_params`` (an early-stopping stand-in).
STEPS = 10


class LinearModel:
    """Logistic regression on some features; ``balanced`` reweights classes, which inflates
    the probabilities of the rare class (calibration has something to correct)."""

    def __init__(self, features: list[str], params: dict[str, Any], balanced: bool) -> None:
        self.features = features
        self.params = dict(params)
        self.balanced = balanced
        self.coef: list[float] = []
        self.intercept = 0.0
        self.rows = 0

    def fit(self, train: Dataset, valid: Dataset | None = None, progress: Any = None) -> None:
        from sklearn.linear_model import LogisticRegression

        fitted = LogisticRegression(
            C=float(self.params.get("C", 1.0)), class_weight="balanced" if self.balanced else None
        ).fit(train.frame[self.features].to_numpy(), train.y)
        self.coef = fitted.coef_[0].tolist()
        self.intercept = float(fitted.intercept_[0])
        self.rows = len(train)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        logit = X[self.features].to_numpy(dtype=np.float64) @ np.array(self.coef) + self.intercept
        p = 1.0 / (1.0 + np.exp(-logit))
        return np.column_stack([1 - p, p])

    def refit_params(self, scale: float) -> dict[str, Any]:
        return {"steps": round(int(self.params.get("steps", STEPS)) * scale)}

    def save(self, path: Path) -> None:
        (path / "linear.json").write_text(json.dumps(self.__dict__))


def load_linear(path: Path) -> LinearModel:
    data = json.loads((Path(path) / "linear.json").read_text())
    model = LinearModel(data["features"], data["params"], data["balanced"])
    model.__dict__.update(data)
    return model


class LinearTask(TaskType):
    """Rare positives (about 8 %) that depend on x1 and x2."""

    description = "logistic regressions for selection tests"

    def __init__(self, name: str = "linear", fail_baseline: bool = False) -> None:
        self.name = name  # type: ignore[misc]
        self.fail_baseline = fail_baseline

    def load(self, url, options):
        raise NotImplementedError

    def synthesize(self, rows: int, seed: int = 0, drift: float = 0.0) -> Dataset:
        rng = np.random.default_rng(seed)
        x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
        p = 1 / (1 + np.exp(-(-3.2 + 1.4 * x1 + 0.9 * x2)))
        frame = pd.DataFrame({"x1": x1, "x2": x2, "y": (rng.random(rows) < p).astype(int)})
        return Dataset(SCHEMA.validate(frame, "linear"), SCHEMA, "linear")

    def create_model(self, schema, params):
        return LinearModel(["x1", "x2"], dict(params), balanced=True)

    def create_baseline(self, schema, params=None):
        if self.fail_baseline:
            raise RuntimeError("baseline exploded")
        return LinearModel(["x1"], dict(params or {}), balanced=False)

    def baseline_space(self):
        return {"C": [1.0, 0.0001]}

    def load_model(self, path):
        return load_linear(path)

    def search_space(self):
        return SearchSpace(params={"steps": STEPS})

    def evaluate(self, data, proba, threshold=None):
        from sklearn.metrics import average_precision_score

        cut = 0.5 if threshold is None else threshold
        values = {
            "pr_auc": float(average_precision_score(data.y, proba[:, 1])),
            "accuracy": float(np.mean((proba[:, 1] >= cut) == data.y)),
        }
        return Metrics(values=values, primary="pr_auc", threshold=cut)

    def business_value(self, data, proba, metrics):
        return BusinessValue(value=metrics.score, unit="points", no_model_value=0.0, summary="linear")

    def explain(self, model, data, rows=100):
        return Explanation(kind="none", global_importance={"x1": 1.0, "x2": 0.5})
