from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from fraud_support import Splits
from mlplug_fraud import FraudTask
from mlplug_fraud.columns import CLASSES
from mlplug_fraud.metrics import MAX_CURVE_POINTS
from mlplug_fraud.model import CatBoostFraudModel
from mlplug_fraud.value import choose_threshold

from mlplug.dataset import Dataset
from mlplug.schema import Column, Role, Schema


def labelled(y: list[int] | np.ndarray, amount: list[float] | np.ndarray | None = None) -> Dataset:
    """A validated data set with the given labels (and amounts, when given)."""
    y = np.asarray(y)
    extras = {"amount_column": "amount"} if amount is not None else {}
    schema = Schema(
        features=(Column("amount", Role.NUMERIC),), target="is_fraud", classes=CLASSES, extras=extras
    )
    values = np.full(len(y), 100.0) if amount is None else np.asarray(amount, dtype=float)
    frame = pd.DataFrame({"amount": values, "is_fraud": y})
    return Dataset(schema.validate(frame, "test"), schema, "test")


def as_proba(fraud: np.ndarray) -> np.ndarray:
    return np.column_stack([1 - fraud, fraud])


def test_perfect_predictions_score_one(task: FraudTask) -> None:
    y = np.array([0] * 95 + [1] * 5)
    metrics = task.evaluate(labelled(y), as_proba(y.astype(float)))
    assert metrics.primary == "pr_auc" and metrics.higher_is_better
    assert metrics.score == 1.0
    for name in ("roc_auc", "recall_at_1pct_fpr", "precision", "recall", "f1"):
        assert metrics.values[name] == 1.0, name
    assert metrics.details["confusion_matrix"] == {"tn": 95, "fp": 0, "fn": 0, "tp": 5}


def test_random_predictions_score_about_the_fraud_rate(task: FraudTask) -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(20_000) < 0.02).astype(int)
    metrics = task.evaluate(labelled(y), as_proba(rng.random(len(y))))
    assert metrics.score == pytest.approx(y.mean(), abs=0.01)
    assert metrics.values["roc_auc"] == pytest.approx(0.5, abs=0.05)
    assert metrics.values["recall_at_1pct_fpr"] < 0.05


def test_model_metrics_and_details(
    task: FraudTask, catboost_model: CatBoostFraudModel, splits: Splits
) -> None:
    metrics = task.evaluate(splits.test, catboost_model.predict_proba(splits.test.X))
    values = metrics.values
    assert 0.3 < values["pr_auc"] < 1 and 0.7 < values["roc_auc"] < 1
    assert (
        0 < values["recall_at_1pct_fpr"] <= 1 and 0 < values["precision"] <= 1 and 0 < values["recall"] <= 1
    )
    assert values["f1"] == pytest.approx(
        2 * values["precision"] * values["recall"] / (values["precision"] + values["recall"])
    )
    assert metrics.threshold is not None and 0 < metrics.threshold < 1
    details = metrics.details
    for curve, keys in (
        ("pr_curve", {"precision", "recall", "threshold"}),
        ("roc_curve", {"fpr", "tpr", "threshold"}),
    ):
        assert set(details[curve]) == keys
        lengths = {len(v) for v in details[curve].values()}
        assert len(lengths) == 1 and 2 <= lengths.pop() <= MAX_CURVE_POINTS
    assert details["roc_curve"]["fpr"][0] == 0.0 and details["roc_curve"]["tpr"][-1] == 1.0
    assert sum(details["confusion_matrix"].values()) == len(splits.test)
    bins = details["calibration"]
    assert sum(b["count"] for b in bins) == len(splits.test)
    assert all(0 <= b["fraud_rate"] <= 1 and b["lower"] <= b["mean_predicted"] <= b["upper"] for b in bins)
    json.dumps(details, allow_nan=False)  # details go into reports and metadata as JSON


def test_threshold_maximises_savings() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(400) < 0.1).astype(int)
    p = np.clip(0.3 * y + rng.random(400) * 0.7, 0, 1).round(2)  # rounding makes ties
    losses = rng.lognormal(4, 1, 400)
    fee = 20.0

    def savings(threshold: float) -> float:
        flagged = p >= threshold
        return float(losses[flagged & (y == 1)].sum() - fee * (flagged & (y == 0)).sum())

    best = choose_threshold(y, p, losses, fee)
    assert savings(best) == pytest.approx(max(savings(t) for t in np.unique(p)))


def test_threshold_flags_nothing_when_nothing_pays(task: FraudTask) -> None:
    y = np.array([0] * 50 + [1] * 2)
    # The fraud hides among legit rows and each review costs more than any fraud loses.
    data = labelled(y, amount=[1.0] * 52)
    proba = as_proba(np.linspace(0, 0.9, 52)[::-1].copy())
    metrics = task.evaluate(data, proba)
    assert metrics.threshold is not None and metrics.threshold > 0.9
    assert metrics.values["alert_rate"] == 0.0 and metrics.values["precision"] == 0.0


def test_single_class_holdout_gives_nan_and_a_note(task: FraudTask) -> None:
    y = np.zeros(50, dtype=int)
    metrics = task.evaluate(labelled(y), as_proba(np.linspace(0, 1, 50)))
    for name in ("pr_auc", "roc_auc", "recall_at_1pct_fpr", "recall", "f1"):
        assert math.isnan(metrics.values[name]), name
    assert "all 50 rows are 'legit'" in metrics.details["note"]
    # A NaN score never wins a comparison, so such a model is never promoted.
    assert not metrics.beats(task.evaluate(labelled([0, 1]), as_proba(np.array([0.1, 0.9]))))


def test_wrong_probability_shape_is_refused(task: FraudTask) -> None:
    with pytest.raises(ValueError, match=r"proba must have shape \(3, 2\)"):
        task.evaluate(labelled([0, 1, 0]), np.array([0.1, 0.9, 0.2]))
