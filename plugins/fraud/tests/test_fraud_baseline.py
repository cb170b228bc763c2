from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from fraud_support import Splits
from mlplug_fraud import FraudTask
from mlplug_fraud.baseline import BaselineFraudModel
from mlplug_fraud.columns import CLASSES

from mlplug.dataset import Dataset
from mlplug.schema import Column, Role, Schema
from mlplug.task import Model


def test_fast_scorer_matches_the_sklearn_pipeline(baseline_model: BaselineFraudModel, splits: Splits) -> None:
    X = splits.test.X.copy()  # noqa: N806
    X.loc[0, "merchant_category"] = "never seen before"
    X.loc[1, "amount"] = np.nan
    np.testing.assert_allclose(
        baseline_model.predict_proba(X), baseline_model.pipeline.predict_proba(X), rtol=0, atol=1e-12
    )


def test_predict_proba_shape_and_dtype(baseline_model: BaselineFraudModel, splits: Splits) -> None:
    assert isinstance(baseline_model, Model)
    proba = baseline_model.predict_proba(splits.test.X.iloc[[0]])
    assert proba.shape == (1, 2) and proba.dtype == np.float64


def test_save_load_round_trip_is_identical(
    tmp_path: Path, task: FraudTask, baseline_model: BaselineFraudModel, splits: Splits
) -> None:
    baseline_model.save(tmp_path)
    assert json.loads((tmp_path / "model.json").read_text())["kind"] == "baseline"
    loaded = task.load_model(tmp_path)
    assert isinstance(loaded, BaselineFraudModel)
    X = splits.test.X  # noqa: N806
    np.testing.assert_array_equal(loaded.predict_proba(X), baseline_model.predict_proba(X))
    np.testing.assert_array_equal(loaded.shap_values(X), baseline_model.shap_values(X))


def test_shap_values_add_up_to_the_logit(baseline_model: BaselineFraudModel, splits: Splits) -> None:
    # Exact SHAP: the values of a row sum to its logit minus the mean training logit.
    X = splits.test.X.iloc[:50]  # noqa: N806
    fraud = baseline_model.predict_proba(X)[:, 1]
    logit = np.log(fraud / (1 - fraud))
    train_p = baseline_model.predict_proba(splits.train.X)[:, 1]
    mean_logit = np.log(train_p / (1 - train_p)).mean()
    np.testing.assert_allclose(baseline_model.shap_values(X).sum(axis=1), logit - mean_logit, atol=1e-9)


def test_progress_is_reported_once(task: FraudTask, splits: Splits) -> None:
    reports: list[tuple[int, float]] = []
    model = task.create_baseline(splits.train.schema)
    model.fit(splits.train, splits.valid, progress=lambda step, score: reports.append((step, score)))
    assert len(reports) == 1 and reports[0][0] == 1 and 0.0 < reports[0][1] < 1.0


def test_awkward_column_names_work(task: FraudTask) -> None:
    # sklearn forbids "__" in step names and names that clash with its parameters.
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "n_jobs": rng.normal(size=200),
            "a__b": rng.choice(["x", "y"], 200),
            "is_fraud": np.tile([0, 0, 0, 1], 50),
        }
    )
    schema = Schema((Column("n_jobs", Role.NUMERIC), Column("a__b", Role.CATEGORICAL)), "is_fraud", CLASSES)
    data = Dataset(schema.validate(frame, "t"), schema, "t")
    model = task.create_baseline(schema)
    model.fit(data)
    assert model.predict_proba(data.X).shape == (200, 2)
    assert len(task.explain(model, data, rows=10).global_importance) == 2


def test_the_baseline_space_is_searchable_and_its_params_reach_the_model(splits: Splits) -> None:
    task = FraudTask()
    space = task.baseline_space()
    assert space["C"][0] == 1.0 and space["class_weight"][0] == "balanced"  # defaults first
    plain = task.create_baseline(splits.train.schema, {"C": 0.01, "class_weight": "none"})
    plain.fit(splits.train)
    classify = plain.pipeline.named_steps["classify"]
    assert classify.C == 0.01 and classify.class_weight is None
    # Without class weights the probabilities sit near the fraud rate; balanced weights
    # inflate them (what calibration corrects).
    weighted = task.create_baseline(splits.train.schema)
    weighted.fit(splits.train)
    rate = splits.test.y.mean()
    assert abs(plain.predict_proba(splits.test.X)[:, 1].mean() - rate) < 0.01
    assert weighted.predict_proba(splits.test.X)[:, 1].mean() > 5 * rate
    try:
        task.create_baseline(splits.train.schema, {"class_weight": "heavy"})
    except ValueError as exc:
        assert "class_weight" in str(exc)
    else:
        raise AssertionError("an unknown class_weight was accepted")
