from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fraud_support import Splits
from mlplug_fraud import CostModel, FraudTask
from mlplug_fraud.columns import CLASSES
from mlplug_fraud.model import CatBoostFraudModel

from mlplug.dataset import Dataset
from mlplug.schema import Column, Role, Schema
from mlplug.task import Metrics


def dataset(y: list[int], amount: list[float] | None) -> Dataset:
    extras = {"amount_column": "amount"} if amount is not None else {}
    schema = Schema((Column("amount", Role.NUMERIC),), "is_fraud", CLASSES, extras=extras)
    frame = pd.DataFrame({"amount": amount if amount is not None else [1.0] * len(y), "is_fraud": y})
    return Dataset(schema.validate(frame, "test"), schema, "test")


def proba(fraud: list[float]) -> np.ndarray:
    p = np.asarray(fraud, dtype=float)
    return np.column_stack([1 - p, p])


Y = [0, 0, 0, 0, 1, 1]
AMOUNTS = [10.0, 20.0, 30.0, 40.0, 500.0, 1500.0]


def test_perfect_model_saves_every_fraud_amount(task: FraudTask) -> None:
    data, p = dataset(Y, AMOUNTS), proba([0, 0, 0, 0, 1, 1])
    value = task.business_value(data, p, task.evaluate(data, p))
    assert value.unit == "USD" and value.no_model_value == 0.0
    assert value.value == value.gain == pytest.approx(2000.0)
    assert value.details["cost_without_model"] == 2000.0 and value.details["cost_with_model"] == 0.0
    assert value.details["caught_fraud"] == 2 and value.details["false_alarms"] == 0
    assert "saves 2,000 USD" in value.summary


def test_alerting_on_everything_costs_more_than_no_model_when_fraud_is_cheap() -> None:
    task = FraudTask(costs=CostModel(review_fee=50.0))
    data, p = dataset(Y, [10.0, 20.0, 30.0, 40.0, 5.0, 15.0]), proba([0.5] * 6)
    flag_all = Metrics({"pr_auc": 0.3}, "pr_auc", threshold=0.0)
    value = task.business_value(data, p, flag_all)
    assert value.value == pytest.approx(20.0 - 4 * 50.0)
    assert value.value < 0 and "costs 180 USD more than no model" in value.summary
    # The threshold evaluate() picks never does worse than no model.
    assert task.business_value(data, p, task.evaluate(data, p)).value >= 0


def test_without_an_amount_column_a_fixed_loss_is_used() -> None:
    task = FraudTask(costs=CostModel(default_loss=300.0, review_fee=1.0))
    data, p = dataset(Y, None), proba([0, 0, 0, 0.6, 0.7, 0.2])
    value = task.business_value(data, p, Metrics({"pr_auc": 0.5}, "pr_auc", threshold=0.5))
    assert value.details["caught_fraud"] == 1 and value.details["missed_fraud"] == 1
    assert value.value == pytest.approx(300.0 - 1.0)
    assert "a fixed 300.00 USD" in value.summary
    assert "amount_aware_savings" not in value.details


def test_costs_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPLUG_FRAUD_REVIEW_FEE", "7.5")
    monkeypatch.setenv("MLPLUG_FRAUD_CURRENCY", "EUR")
    task = FraudTask()
    assert task.costs.review_fee == 7.5 and task.costs.default_loss == 150.0
    data, p = dataset(Y, AMOUNTS), proba([0, 0, 0, 0.9, 0.9, 0.9])
    value = task.business_value(data, p, Metrics({"pr_auc": 0.5}, "pr_auc", threshold=0.5))
    assert value.unit == "EUR" and value.details["review_cost"] == 7.5


def test_bad_costs_are_refused() -> None:
    with pytest.raises(ValueError, match="review_fee"):
        CostModel(review_fee=-1)


def test_a_trained_model_saves_money_and_expected_loss_ranking_is_reported(
    task: FraudTask, catboost_model: CatBoostFraudModel, splits: Splits
) -> None:
    p = catboost_model.predict_proba(splits.test.X)
    value = task.business_value(splits.test, p, task.evaluate(splits.test, p))
    d = value.details
    assert value.value > 0.3 * d["cost_without_model"]
    assert d["caught_fraud"] + d["missed_fraud"] == d["frauds"] == splits.test.y.sum()
    assert d["cost_without_model"] == pytest.approx(splits.test.frame.loc[splits.test.y == 1, "amount"].sum())
    assert value.value == pytest.approx(d["cost_without_model"] - d["cost_with_model"])
    assert d["amount_aware_savings"] > 0 and "expected loss" in value.summary
