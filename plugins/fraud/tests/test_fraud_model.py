from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fraud_support import FAST_PARAMS, Splits
from mlplug_fraud import FraudTask
from mlplug_fraud.baseline import BaselineFraudModel
from mlplug_fraud.model import CatBoostFraudModel
from mlplug_fraud.params import PROGRESS_STEPS
from sklearn.metrics import average_precision_score

from mlplug.errors import DataError
from mlplug.task import Model


def test_predict_proba_shape_dtype_and_rows(catboost_model: CatBoostFraudModel, splits: Splits) -> None:
    assert isinstance(catboost_model, Model)
    proba = catboost_model.predict_proba(splits.test.X)
    assert proba.shape == (len(splits.test), 2) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    one = catboost_model.predict_proba(splits.test.X.iloc[[3]])
    np.testing.assert_allclose(one, proba[[3]])
    # Extra columns (id, time, label) and another column order are fine.
    shuffled = splits.test.frame[list(reversed(splits.test.frame.columns))]
    np.testing.assert_allclose(catboost_model.predict_proba(shuffled), proba)


def test_categorical_columns_go_to_catboost_as_categorical(catboost_model: CatBoostFraudModel) -> None:
    assert catboost_model.categorical == ["merchant_category"]
    inner = catboost_model._fitted()
    assert inner.get_cat_feature_indices() == [catboost_model.features.index("merchant_category")]


def test_save_load_round_trip_is_identical(
    tmp_path: Path, task: FraudTask, catboost_model: CatBoostFraudModel, splits: Splits
) -> None:
    catboost_model.save(tmp_path)
    manifest = json.loads((tmp_path / "model.json").read_text())
    assert manifest["kind"] == "catboost" and manifest["file"] == "model.cbm"
    assert manifest["features"] == splits.train.schema.feature_names
    assert manifest["params"]["iterations"] == FAST_PARAMS["iterations"]
    loaded = task.load_model(tmp_path)
    assert isinstance(loaded, CatBoostFraudModel)
    X = splits.test.X  # noqa: N806
    np.testing.assert_array_equal(loaded.predict_proba(X), catboost_model.predict_proba(X))


def test_catboost_beats_the_baseline_on_pr_auc(
    catboost_model: CatBoostFraudModel, baseline_model: BaselineFraudModel, splits: Splits
) -> None:
    y = splits.test.y
    main = average_precision_score(y, catboost_model.predict_proba(splits.test.X)[:, 1])
    base = average_precision_score(y, baseline_model.predict_proba(splits.test.X)[:, 1])
    # Measured 0.40-0.47 vs 0.12-0.13 over four seeds: the interactions are what CatBoost finds.
    assert main > 2 * base and main - base > 0.15, (main, base)


def test_early_stopping_keeps_the_best_iteration(catboost_model: CatBoostFraudModel) -> None:
    best = catboost_model.best_iteration
    assert best is not None and best < FAST_PARAMS["iterations"]
    assert catboost_model._fitted().tree_count_ == best + 1


def test_progress_reports_increasing_steps_up_to_max_steps(task: FraudTask, splits: Splits) -> None:
    reports: list[tuple[int, float]] = []
    # No early stop, so that every step is reported.
    model = task.create_model(splits.train.schema, {"iterations": 60, "early_stopping_rounds": 1000})
    model.fit(splits.train, splits.valid, progress=lambda step, score: reports.append((step, score)))
    steps = [s for s, _ in reports]
    assert steps == list(range(1, PROGRESS_STEPS + 1))
    scores = [v for _, v in reports]
    assert all(0.0 <= v <= 1.0 for v in scores)
    assert scores == sorted(scores)  # the best score so far never goes down


def test_early_stopping_reports_the_remaining_steps_with_the_final_score(
    task: FraudTask, splits: Splits
) -> None:
    reports: list[tuple[int, float]] = []
    model = task.create_model(splits.train.schema, {"iterations": 400, "early_stopping_rounds": 10})
    model.fit(splits.train, splits.valid, progress=lambda step, score: reports.append((step, score)))
    assert isinstance(model, CatBoostFraudModel)
    best = model.best_iteration
    assert best is not None and best < 200  # stopped early, before step 5 of 10
    assert [s for s, _ in reports] == list(range(1, PROGRESS_STEPS + 1))
    assert len({v for _, v in reports[5:]}) == 1  # nothing changes after the stop


def test_an_uneven_budget_still_ends_at_max_steps(task: FraudTask, splits: Splits) -> None:
    steps: list[int] = []
    model = task.create_model(splits.train.schema, {"iterations": 23, "early_stopping_rounds": 1000})
    model.fit(splits.train, splits.valid, progress=lambda step, score: steps.append(step))
    assert steps == list(range(1, PROGRESS_STEPS + 1))


def test_an_exception_in_progress_stops_training_and_propagates(task: FraudTask, splits: Splits) -> None:
    class TrialStoppedError(Exception):
        pass

    def stop(step: int, score: float) -> None:
        raise TrialStoppedError(f"stopped at {step}")

    model = task.create_model(splits.train.schema, {"iterations": 100, "early_stopping_rounds": 1000})
    with pytest.raises(TrialStoppedError, match="stopped at 1"):
        model.fit(splits.train, splits.valid, progress=stop)


def test_fit_without_validation_trains_all_iterations(task: FraudTask, splits: Splits) -> None:
    calls: list[int] = []
    model = task.create_model(splits.train.schema, {"iterations": 25, "thread_count": 1})
    model.fit(splits.train, None, progress=lambda step, score: calls.append(step))
    assert calls == []
    assert isinstance(model, CatBoostFraudModel) and model._fitted().tree_count_ == 25
    assert model._fitted().get_params()["thread_count"] == 1


def test_single_class_training_data_is_a_data_error(task: FraudTask, splits: Splits) -> None:
    legit_only = splits.train.subset(np.flatnonzero(splits.train.y == 0)[:500])
    model = task.create_model(splits.train.schema, {"iterations": 5})
    with pytest.raises(DataError, match="training data has only 'legit' rows"):
        model.fit(legit_only)


def test_single_class_validation_data_trains_without_early_stopping(
    task: FraudTask, splits: Splits, caplog: pytest.LogCaptureFixture
) -> None:
    legit_only = splits.valid.subset(np.flatnonzero(splits.valid.y == 0)[:500])
    model = task.create_model(splits.train.schema, {"iterations": 15})
    calls: list[int] = []
    model.fit(splits.train, legit_only, progress=lambda step, score: calls.append(step))
    assert calls == [] and "single class" in caplog.text
    assert isinstance(model, CatBoostFraudModel) and model._fitted().tree_count_ == 15


def test_the_tuners_seed_is_the_random_seed(task: FraudTask, splits: Splits) -> None:
    model = task.create_model(splits.train.schema, {"seed": 42})
    assert isinstance(model, CatBoostFraudModel)
    assert model.params["random_seed"] == 42 and "seed" not in model.params


def test_unknown_parameter_is_refused(task: FraudTask, splits: Splits) -> None:
    with pytest.raises(ValueError, match=r"unknown fraud model parameter\(s\) \['dept'\]"):
        task.create_model(splits.train.schema, {"dept": 6})
    with pytest.raises(ValueError, match="auto_class_weights"):
        task.create_model(splits.train.schema, {"auto_class_weights": "Heavy"})


def test_predict_before_fit_says_so(task: FraudTask, splits: Splits) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        task.create_model(splits.train.schema, {}).predict_proba(splits.test.X)


def test_refit_params_carry_the_early_stopping_tree_count_scaled(splits: Splits) -> None:
    task = FraudTask()
    model = task.create_model(splits.train.schema, {"iterations": 400, "learning_rate": 0.3})
    model.fit(splits.train, splits.valid)
    kept = model._fitted().tree_count_
    assert kept < 400  # early stopping cut it short
    assert model.refit_params(1.0) == {"iterations": kept}
    assert model.refit_params(1.25) == {"iterations": round(kept * 1.25)}
    again = task.create_model(
        splits.train.schema, {"iterations": 400, "learning_rate": 0.3, **model.refit_params(1.0)}
    )
    again.fit(splits.train, None)
    assert again._fitted().tree_count_ == kept


def test_early_stopping_watches_logloss_unless_told_otherwise(splits: Splits) -> None:
    task = FraudTask()
    default = task.create_model(splits.train.schema, {"iterations": 50})
    default.fit(splits.train, splits.valid)
    assert default._fitted().get_all_params()["eval_metric"] == "Logloss"
    prauc = task.create_model(splits.train.schema, {"iterations": 50, "early_stopping_metric": "PRAUC"})
    prauc.fit(splits.train, splits.valid)
    assert prauc._fitted().get_all_params()["eval_metric"].startswith("PRAUC")
