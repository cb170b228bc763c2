"""A small but real task plugin, installed with pip by the tests as a third party would be:
customer churn from tenure and plan, a logistic model on tenure, a base-rate baseline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field

import mlplug
from mlplug.dataset import Dataset
from mlplug.io import read_table
from mlplug.schema import Column, Role, Schema
from mlplug.task import BusinessValue, Explanation, LoadOptions, Metrics, SearchSpace, TaskType

MLPLUG_API_VERSION = "1"

SCHEMA = Schema(
    features=(Column("tenure", Role.NUMERIC), Column("plan", Role.CATEGORICAL)),
    target="churned",
    classes=("stays", "churns"),
)


class ChurnOptions(LoadOptions):
    target: str = Field("churned", description="column that says whether the customer left (0/1)")


class TenureModel:
    """P(churn) = sigmoid(a + b * tenure), fitted by a few Newton steps."""

    def __init__(self, coef: tuple[float, float] = (0.0, 0.0), kind: str = "logistic") -> None:
        self.coef, self.kind = coef, kind

    def fit(self, train: Dataset, valid: Dataset | None = None, progress=None) -> None:
        x = train.frame["tenure"].to_numpy(float) / 12.0
        y = train.y.astype(float)
        if self.kind == "base_rate":
            rate = min(max(y.mean(), 1e-3), 1 - 1e-3)
            self.coef = (float(np.log(rate / (1 - rate))), 0.0)
            return
        a, b = 0.0, 0.0
        for step in range(25):
            p = 1 / (1 + np.exp(-(a + b * x)))
            w = p * (1 - p) + 1e-9
            grad = np.array([np.sum(y - p), np.sum((y - p) * x)])
            hess = np.array([[w.sum(), (w * x).sum()], [(w * x).sum(), (w * x * x).sum()]])
            a, b = np.array([a, b]) + np.linalg.solve(hess + 1e-6 * np.eye(2), grad)
            if progress:
                progress(step + 1, float(-np.mean((p > 0.5) != y)))
        self.coef = (float(a), float(b))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        a, b = self.coef
        p = 1 / (1 + np.exp(-(a + b * X["tenure"].to_numpy(float) / 12.0)))
        return np.column_stack([1 - p, p])

    def save(self, path: Path) -> None:
        (path / "churn.json").write_text(json.dumps({"coef": self.coef, "kind": self.kind}))


class Churn(TaskType):
    name = "churn"
    description = "customer churn from tenure and plan (a third-party test plugin)"
    options_model = ChurnOptions

    def load(self, url, options):
        frame = read_table(url)
        frame = frame.rename(columns={options.target: "churned"})
        return Dataset(SCHEMA.validate(frame, url), SCHEMA, url)

    def synthesize(self, rows, seed=0, drift=0.0):
        rng = np.random.default_rng(seed)
        tenure = rng.gamma(2.0, 12.0 * (1 + drift), rows)
        plan = rng.choice(["basic", "plus", "pro"], rows, p=[0.5, 0.3, 0.2])
        churns = rng.random(rows) < 1 / (1 + np.exp(-(1.0 - tenure / 12.0)))
        frame = pd.DataFrame({"tenure": tenure, "plan": plan, "churned": churns.astype(int)})
        return Dataset(SCHEMA.validate(frame, "synthetic"), SCHEMA, f"synthetic churn (seed {seed})")

    def create_model(self, schema, params):
        return TenureModel()

    def create_baseline(self, schema):
        return TenureModel(kind="base_rate")

    def load_model(self, path):
        data = json.loads((Path(path) / "churn.json").read_text())
        return TenureModel(tuple(data["coef"]), data["kind"])

    def search_space(self):
        return SearchSpace(params={"steps": 25})

    def evaluate(self, data, proba, threshold=None):
        cut = 0.5 if threshold is None else threshold
        accuracy = float(np.mean((proba[:, 1] >= cut) == data.y))
        return Metrics({"accuracy": accuracy}, "accuracy", threshold=cut)

    def business_value(self, data, proba, metrics):
        kept = float(np.sum((proba[:, 1] >= (metrics.threshold or 0.5)) & (data.y == 1)))
        return BusinessValue(kept * 20.0, "EUR", 0.0, f"{kept:.0f} churners reached in time")

    def explain(self, model, data, rows=100):
        return Explanation("coefficient", {"tenure": float(model.coef[1]), "plan": 0.0})


@mlplug.hookimpl
def register_tasks(register):
    register(Churn())
