"""The fraud task type: what the shared flows call, delegating to this package's modules.

Heavy libraries (CatBoost, scikit-learn, Ray) are imported inside the methods, so listing
plugins or starting the CLI does not pay for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mlplug.dataset import Dataset
from mlplug.schema import Schema
from mlplug.task import BusinessValue, Explanation, LoadOptions, Metrics, Model, SearchSpace, TaskType
from mlplug_fraud.loader import FraudLoadOptions
from mlplug_fraud.value import CostModel


class FraudTask(TaskType):
    """Card-fraud detection on a table of transactions.

    ``costs`` fixes the cost model; by default it is read from ``MLPLUG_FRAUD_*``
    environment variables each time it is needed (see :class:`CostModel`).
    """

    name = "fraud"
    description = "Card-fraud detection on transaction tables: CatBoost, cost-based threshold, SHAP"
    options_model = FraudLoadOptions

    def __init__(self, costs: CostModel | None = None) -> None:
        self._costs = costs

    @property
    def costs(self) -> CostModel:
        return self._costs if self._costs is not None else CostModel()

    # -- data ----------------------------------------------------------------------------

    def load(self, url: str, options: LoadOptions) -> Dataset:
        from mlplug_fraud.loader import load

        if not isinstance(options, FraudLoadOptions):
            options = FraudLoadOptions.model_validate(options.model_dump())
        return load(url, options)

    def synthesize(self, rows: int, seed: int = 0, drift: float = 0.0) -> Dataset:
        from mlplug_fraud.synthetic import synthesize

        return synthesize(rows, seed, drift)

    # -- models --------------------------------------------------------------------------

    def create_model(self, schema: Schema, params: Mapping[str, Any]) -> Model:
        from mlplug_fraud.model import CatBoostFraudModel

        return CatBoostFraudModel.for_schema(schema, params)

    def create_baseline(self, schema: Schema, params: Mapping[str, Any] | None = None) -> Model:
        from mlplug_fraud.baseline import BaselineFraudModel

        return BaselineFraudModel.for_schema(schema, params)

    def baseline_space(self) -> dict[str, list[Any]]:
        from mlplug_fraud.baseline import SEARCH_SPACE

        return {k: list(v) for k, v in SEARCH_SPACE.items()}

    def load_model(self, path: Path) -> Model:
        from mlplug_fraud.persistence import load_model

        return load_model(path)

    def search_space(self) -> SearchSpace:
        from mlplug_fraud.search import search_space

        return search_space()

    def default_params(self) -> dict[str, Any]:
        from mlplug_fraud.search import default_params

        return default_params()

    def quick_params(self) -> dict[str, Any]:
        from mlplug_fraud.search import quick_params

        return quick_params()

    # -- judging -------------------------------------------------------------------------

    def evaluate(self, data: Dataset, proba: np.ndarray, threshold: float | None = None) -> Metrics:
        from mlplug_fraud.metrics import evaluate

        return evaluate(data, proba, self.costs, threshold)

    def business_value(self, data: Dataset, proba: np.ndarray, metrics: Metrics) -> BusinessValue:
        from mlplug_fraud.value import business_value

        return business_value(data, proba, metrics, self.costs)

    def explain(self, model: Model, data: Dataset, rows: int = 100) -> Explanation:
        from mlplug_fraud.explain import explain

        return explain(model, data, rows)
