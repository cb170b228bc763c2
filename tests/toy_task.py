"""A minimal task type for tests about plugins (not about ML)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field

from mlplug.dataset import Dataset
from mlplug.schema import Column, Role, Schema
from mlplug.task import BusinessValue, Explanation, LoadOptions, Metrics, SearchSpace, TaskType


class ConstantModel:
    def __init__(self, rate: float = 0.5) -> None:
        self.rate = rate

    def fit(self, train, valid=None, progress=None) -> None:
        self.rate = float(np.mean(train.y))
        if progress:
            progress(1, self.rate)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        return np.tile([1 - self.rate, self.rate], (len(X), 1))

    def save(self, path: Path) -> None:
        (path / "rate.txt").write_text(repr(self.rate))


class ToyLoadOptions(LoadOptions):
    label: str = Field("y", description="label column of the file")


class ToyTask(TaskType):
    description = "a toy task for tests"
    options_model = ToyLoadOptions

    def __init__(self, name: str = "toy") -> None:
        self.name = name  # type: ignore[misc]
        self.schema = Schema(features=(Column("x", Role.NUMERIC),), target="y", classes=("no", "yes"))

    def load(self, url, options):
        raise NotImplementedError

    def synthesize(self, rows, seed=0, drift=0.0):
        rng = np.random.default_rng(seed)
        x = rng.normal(drift, 1, rows)
        frame = pd.DataFrame({"x": x, "y": (x + rng.normal(0, 1, rows) > 0).astype(int)})
        return Dataset(self.schema.validate(frame, "toy"), self.schema, "toy")

    def create_model(self, schema, params):
        return ConstantModel()

    def create_baseline(self, schema):
        return ConstantModel()

    def load_model(self, path):
        return ConstantModel(float((Path(path) / "rate.txt").read_text()))

    def search_space(self):
        return SearchSpace(params={"rate": 0.5})

    def evaluate(self, data, proba, threshold=None):
        cut = 0.5 if threshold is None else threshold
        acc = float(np.mean((proba[:, 1] > cut) == data.y))
        return Metrics(values={"accuracy": acc}, primary="accuracy", threshold=cut)

    def business_value(self, data, proba, metrics):
        return BusinessValue(value=metrics.score, unit="points", no_model_value=0.5, summary="toy")

    def explain(self, model, data, rows=100):
        return Explanation(kind="none", global_importance={"x": 1.0})
