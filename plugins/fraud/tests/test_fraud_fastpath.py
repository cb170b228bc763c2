"""The serving fast path (``predict_proba_rows``): the compiled trees agree with CatBoost on every
kind of input, batches and unsupported models fall back to CatBoost, and the baseline scores rows."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from fraud_support import FAST_PARAMS, Splits
from mlplug_fraud import FraudTask
from mlplug_fraud.baseline import BaselineFraudModel
from mlplug_fraud.fastpath import CompiledTrees
from mlplug_fraud.model import FAST_PATH_ROWS, CatBoostFraudModel
from mlplug_fraud.persistence import load_model

from mlplug.task import RowModel


def rows_of(splits: Splits, n: int) -> list[list]:
    return splits.test.X.iloc[:n].values.tolist()


def test_compiled_trees_match_catboost_exactly(catboost_model: CatBoostFraudModel, splits: Splits) -> None:
    compiled = catboost_model._fast_path()
    assert isinstance(compiled, CompiledTrees)
    rows = rows_of(splits, 2000)
    expected = catboost_model.predict_proba(splits.test.X.iloc[:2000])
    got = np.vstack([compiled.predict_proba(rows[i : i + 50]) for i in range(0, 2000, 50)])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_nan_unseen_categories_and_values_on_borders(
    catboost_model: CatBoostFraudModel, splits: Splits
) -> None:
    rows = rows_of(splits, 200)
    borders = catboost_model._fitted().get_borders()
    for i, row in enumerate(rows):
        row[0] = float(borders[0][i % len(borders[0])])  # exactly on an amount border
        if i % 3 == 0:
            row[1] = f"new-category-{i}"
        if i % 5 == 0:
            row[2] = float("nan")
    expected = catboost_model._fitted().predict_proba(rows)
    np.testing.assert_allclose(catboost_model._fast_path().predict_proba(rows), expected, atol=1e-12)


def test_rows_path_equals_the_frame_path(
    catboost_model: CatBoostFraudModel, baseline_model: BaselineFraudModel, splits: Splits
) -> None:
    for model in (catboost_model, baseline_model):
        assert isinstance(model, RowModel)
        for n in (1, FAST_PATH_ROWS, FAST_PATH_ROWS + 1, 700):  # compiled, and CatBoost for batches
            np.testing.assert_allclose(
                model.predict_proba_rows(rows_of(splits, n)),
                model.predict_proba(splits.test.X.iloc[:n]),
                atol=1e-12,
            )


def test_training_categories_are_saved_and_enable_the_fast_path_after_loading(
    tmp_path: Path, catboost_model: CatBoostFraudModel, splits: Splits
) -> None:
    catboost_model.save(tmp_path)
    manifest = json.loads((tmp_path / "model.json").read_text())
    assert "grocery" in manifest["categories"]["merchant_category"]
    loaded = load_model(tmp_path)
    assert isinstance(loaded._fast_path(), CompiledTrees)

    # A model saved before categories were recorded still serves, through CatBoost.
    del manifest["categories"]
    (tmp_path / "model.json").write_text(json.dumps(manifest))
    old = load_model(tmp_path)
    assert old._fast_path() is None
    np.testing.assert_allclose(
        old.predict_proba_rows(rows_of(splits, 5)), loaded.predict_proba_rows(rows_of(splits, 5))
    )


def test_target_statistics_models_fall_back_to_catboost(
    task: FraudTask, splits: Splits, tmp_path: Path
) -> None:
    # With one_hot_max_size 2 the ten merchant categories get CatBoost's target statistics.
    model = task.create_model(splits.train.schema, {**FAST_PARAMS, "one_hot_max_size": 2})
    model.fit(splits.train, splits.valid)
    model._fitted().save_model(str(tmp_path / "m.json"), format="json")
    splits_used = {
        s["split_type"]
        for t in json.loads((tmp_path / "m.json").read_text())["oblivious_trees"]
        for s in t["splits"]
    }
    assert "OnlineCtr" in splits_used
    assert model._fast_path() is None
    np.testing.assert_allclose(
        model.predict_proba_rows(rows_of(splits, 3)), model.predict_proba(splits.test.X.iloc[:3])
    )


def test_a_model_with_compiled_trees_still_pickles(
    catboost_model: CatBoostFraudModel, splits: Splits
) -> None:
    catboost_model._fast_path()
    copy = pickle.loads(pickle.dumps(catboost_model))
    np.testing.assert_allclose(
        copy.predict_proba_rows(rows_of(splits, 3)), catboost_model.predict_proba_rows(rows_of(splits, 3))
    )


@pytest.mark.parametrize("n", [1, 8])
def test_the_fast_path_is_faster_than_catboost(
    catboost_model: CatBoostFraudModel, splits: Splits, n: int
) -> None:
    import time

    rows = rows_of(splits, n)
    compiled, inner = catboost_model._fast_path(), catboost_model._fitted()

    def best(fn) -> float:  # type: ignore[no-untyped-def]
        times = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(50):
                fn()
            times.append(time.perf_counter() - start)
        return min(times)

    assert best(lambda: compiled.predict_proba(rows)) < best(
        lambda: inner.predict_proba(rows, thread_count=1)
    )


def test_a_feature_no_tree_splits_on_still_compiles(task: FraudTask, splits: Splits) -> None:
    # A column that is constant in training gets no borders; compiling (on the first served
    # request) used to fail on it with "a cannot be empty", so every request failed.
    train = splits.train.subset(np.arange(600))
    train.frame["txn_velocity_1h"] = 1.0
    model = task.create_model(train.schema, {**FAST_PARAMS, "iterations": 20})
    model.fit(train)
    assert isinstance(model._fast_path(), CompiledTrees)
    rows = rows_of(splits, 5)
    np.testing.assert_allclose(model.predict_proba_rows(rows), model.predict_proba(splits.test.X.iloc[:5]))
