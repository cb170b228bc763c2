from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fraud_support import Splits
from mlplug_fraud import FraudTask
from mlplug_fraud.baseline import BaselineFraudModel
from mlplug_fraud.explain import PERMUTATION_KIND
from mlplug_fraud.model import CatBoostFraudModel


def logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


@pytest.mark.parametrize("name", ["catboost_model", "baseline_model"])
def test_shap_covers_every_feature_and_adds_up(
    request: pytest.FixtureRequest, task: FraudTask, splits: Splits, name: str
) -> None:
    model: CatBoostFraudModel | BaselineFraudModel = request.getfixturevalue(name)
    explanation = task.explain(model, splits.test, rows=40)
    features = splits.test.schema.feature_names
    assert explanation.kind.startswith("shap")
    assert list(explanation.global_importance) == features
    assert all(v >= 0 for v in explanation.global_importance.values())
    assert sum(explanation.global_importance.values()) > 0
    assert len(explanation.per_row) == 40 and all(list(row) == features for row in explanation.per_row)
    # SHAP values are additive in log-odds: differences between rows match the model.
    shap_sums = np.array([sum(row.values()) for row in explanation.per_row])
    z = logit(model.predict_proba(splits.test.X.iloc[:40])[:, 1])
    np.testing.assert_allclose(shap_sums - shap_sums[0], z - z[0], atol=1e-6)


def test_global_importance_finds_the_fraud_signals(
    task: FraudTask, catboost_model: CatBoostFraudModel, splits: Splits
) -> None:
    importance = task.explain(catboost_model, splits.test, rows=2000).global_importance
    top = sorted(importance, key=importance.__getitem__, reverse=True)[:4]
    # The account-takeover pattern is the most common one: its three columns lead.
    assert {"card_present", "device_age_days", "hour"} <= set(top)


class ProbaOnly:
    """A model that knows nothing about explanations."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        p = 1 / (1 + np.exp(-(X["amount"].to_numpy() / 100 - 1)))
        return np.column_stack([1 - p, p])


class BrokenShap(ProbaOnly):
    def shap_values(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        raise RuntimeError("no SHAP today")


@pytest.mark.parametrize("model", [ProbaOnly(), BrokenShap()])
def test_other_models_fall_back_to_permutation(task: FraudTask, splits: Splits, model: ProbaOnly) -> None:
    explanation = task.explain(model, splits.test, rows=30)  # type: ignore[arg-type]
    assert explanation.kind == PERMUTATION_KIND
    assert set(explanation.global_importance) == set(splits.test.schema.feature_names)
    assert explanation.global_importance["amount"] > 0
    assert explanation.global_importance["hour"] == 0  # the model ignores it
    assert len(explanation.per_row) == 30


def test_no_rows_gives_zero_importance(
    task: FraudTask, catboost_model: CatBoostFraudModel, splits: Splits
) -> None:
    explanation = task.explain(catboost_model, splits.test, rows=0)
    assert explanation.per_row == [] and set(explanation.global_importance.values()) == {0.0}
