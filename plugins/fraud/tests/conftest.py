"""Shared fixtures: small synthetic splits and models fitted once per session (seconds)."""

from __future__ import annotations

import pytest
from fraud_support import FAST_PARAMS, Splits
from mlplug_fraud import CostModel, FraudTask
from mlplug_fraud.baseline import BaselineFraudModel
from mlplug_fraud.model import CatBoostFraudModel


@pytest.fixture(autouse=True)
def _no_cost_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Cost settings come from the environment; a developer's shell must not change results.
    for name in ("MLPLUG_FRAUD_REVIEW_FEE", "MLPLUG_FRAUD_DEFAULT_LOSS", "MLPLUG_FRAUD_CURRENCY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def task() -> FraudTask:
    return FraudTask(costs=CostModel(review_fee=5.0, default_loss=150.0, currency="USD"))


@pytest.fixture(scope="session")
def splits(task: FraudTask) -> Splits:
    # Different seeds: the test rows are new draws, not a slice of the training rows.
    return Splits(
        train=task.synthesize(8000, seed=11),
        valid=task.synthesize(3000, seed=12),
        test=task.synthesize(8000, seed=13),
    )


@pytest.fixture(scope="session")
def catboost_model(task: FraudTask, splits: Splits) -> CatBoostFraudModel:
    model = task.create_model(splits.train.schema, FAST_PARAMS)
    assert isinstance(model, CatBoostFraudModel)
    model.fit(splits.train, splits.valid)
    return model


@pytest.fixture(scope="session")
def baseline_model(task: FraudTask, splits: Splits) -> BaselineFraudModel:
    model = task.create_baseline(splits.train.schema)
    assert isinstance(model, BaselineFraudModel)
    model.fit(splits.train, splits.valid)
    return model
